"""The source API token: from Secrets Manager in AWS, from the environment locally. Never logged."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from etl.bronze.settings import IngestionSettings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class TokenError(RuntimeError):
    """The token could not be read."""


def resolve_token(settings: IngestionSettings, client: SecretsManagerClient | None = None) -> str | None:
    """The secret's value when a secret ARN is set, else the token from the settings (or None)."""
    if settings.token_secret_arn:
        return read_secret_token(settings.token_secret_arn, client)
    return settings.token


def read_secret_token(secret_arn: str, client: SecretsManagerClient | None = None) -> str:
    """The token in the secret: the secret string itself, or its "token" field when it is a JSON object."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    try:
        value = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    except (ClientError, BotoCoreError) as e:
        raise TokenError(f"could not read the source API token from secret {secret_arn}: {e}") from e
    except KeyError as e:
        raise TokenError(f"secret {secret_arn} has no string value; store the token as text") from e
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        if not isinstance(document.get("token"), str):
            raise TokenError(f'secret {secret_arn} is a JSON object without a "token" string field')
        return str(document["token"])
    if not value.strip():
        raise TokenError(f"secret {secret_arn} is empty")
    return value.strip()
