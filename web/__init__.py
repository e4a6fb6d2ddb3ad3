"""The web studio: server-rendered pages for signed-in users (the gallery, projects, a new video, the
live job page, usage, API keys) and the account pages (sign-in, sign-up, password)."""
