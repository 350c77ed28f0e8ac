from saleor_app.errors import BadRequest, Forbidden, Unauthorized


class SaleorError(Exception):
    """Saleor could not be asked (down, 5xx, timeout) or answered something we cannot use."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class SaleorPermissionDenied(SaleorError):
    """Saleor refused the app token (the app was removed) or the app lost a permission it needs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class MissingSaleorApiUrl(BadRequest):
    code = "MISSING_SALEOR_API_URL"


class SaleorUrlProhibited(Forbidden):
    code = "SALEOR_URL_PROHIBITED"


class UnknownAppId(Unauthorized):
    code = "UNKNOWN_APP_ID"


class JwksNotAvailable(Unauthorized):
    code = "JWKS_NOT_AVAILABLE"


class UnknownInstallation(Unauthorized):
    code = "UNKNOWN_INSTALLATION"


class InvalidSignature(Unauthorized):
    code = "INVALID_SIGNATURE"
