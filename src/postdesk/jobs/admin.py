from django.contrib import admin

from .models import JobState


@admin.register(JobState)
class JobStateAdmin(admin.ModelAdmin):
    """Read-only: a job's state is written by its runs alone."""

    list_display = ("name", "last_started_at", "last_outcome", "last_summary", "last_success_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
