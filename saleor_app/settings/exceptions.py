from saleor_app.errors import BadRequest, NotFound


class UnknownInstallationUrl(NotFound):
    code = "UNKNOWN_INSTALLATION"


class InvalidChannelSettings(BadRequest):
    """One or more fields are wrong; `fields` maps each field to a message shown next to it."""

    code = "INVALID_CHANNEL_SETTINGS"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
