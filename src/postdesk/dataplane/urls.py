from django.urls import path

from . import gate

app_name = "dataplane"
urlpatterns = [
    path("gate/<str:protocol>", gate.gate, name="gate"),
]
