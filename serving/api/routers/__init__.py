"""One router per resource; :func:`serving.api.app.create_app` includes them all."""
