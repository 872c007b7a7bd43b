"""One router per resource; `sipbox.api.factory.create_api` includes them all."""
