"""OpenAPI descriptions of our authentication schemes and strict input (loaded by AccountsConfig.ready)."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jitaccess.accounts.authentication.BearerAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "Personal API token from /api/v1/auth/token/."}


class GrantCredentialScheme(OpenApiAuthenticationExtension):
    target_class = "approvals.api.authentication.GrantCredentialAuthentication"
    name = "grantCredential"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A grant's credential; only for revealing the secrets that grant opens.",
        }


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jitaccess.accounts.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service account's token (jits_…), created by a security admin; only for the "
            "operations its scopes allow (secrets:read, secrets:reveal, secrets:write, requests:read).",
        }


class SecondFactorSessionScheme(SessionScheme):
    # drf-spectacular matches the exact class only; without this the cookie scheme would vanish
    # from the contract.
    target_class = "jitaccess.accounts.authentication.SecondFactorSessionAuthentication"


class StrictInputSchema(OpenApiSerializerExtension):
    """A StrictInputSerializer refuses fields it does not know (400), and its schema says so."""

    target_class = "jitaccess.serializers.StrictInputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):  # type: ignore[no-untyped-def]
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}
