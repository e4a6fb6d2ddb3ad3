"""Every task path named in generations/queue.py names a function of generations/tasks.py."""
from django.utils.module_loading import import_string

from generations import queue


def test_each_task_constant_names_a_task():
    paths = {name: value for name, value in vars(queue).items() if name.endswith("_TASK")}
    assert len(paths) == 6
    for name, path in paths.items():
        assert path.startswith("generations.tasks."), name
        assert callable(import_string(path)), name
