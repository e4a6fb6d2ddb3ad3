"""Business steps for generations. Views, the API, the CLI, admin and tasks call these only."""
