from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_execute

        from core.task_beat import task_ended

        # In a cluster that `manage.py workers` runs: tells it tasks are ending (core/task_beat.py).
        post_execute.connect(task_ended, dispatch_uid="studio-task-beat")
