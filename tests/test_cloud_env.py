"""The cloud fixtures' environment: no credential a developer or CI runner set reaches a test."""

from __future__ import annotations

import os

import pytest
from cloud_servers import _CLOUD_CREDENTIAL_VARS, _clean_cloud_env

# What a CI runner on ECS/EKS or with GitHub OIDC has set, each of which makes boto3 ask an endpoint
# for credentials. Every address here is loopback port 9 (nothing listens), so a regression fails
# these tests without reaching anything: a relative container URI always means 169.254.170.2, so
# only the test that never runs boto3 sets one.
_RUNNER_ENV = {
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/v1/credentials",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "token",
    "AWS_CONTAINER_SOMETHING_NEWER": "x",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/eks.amazonaws.com/serviceaccount/token",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
    "AWS_ROLE_SESSION_NAME": "ci",
    "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
    "AWS_PROFILE": "prod",
    "AWS_DEFAULT_PROFILE": "prod",
    "BOTO_CONFIG": "/nonexistent/boto.cfg",
    "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/gcp-key.json",
}
_NOT_FOR_BOTO3 = {
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/1234",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/nonexistent/pods.eks.amazonaws.com/token",
}


def test_clean_cloud_env_removes_every_credential_source(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = _RUNNER_ENV | _NOT_FOR_BOTO3
    for name, value in runner.items():
        monkeypatch.setenv(name, value)
    _clean_cloud_env(monkeypatch)
    assert sorted(n for n in runner if n in os.environ) == []
    assert set(runner) - {"AWS_CONTAINER_SOMETHING_NEWER", "AWS_ENDPOINT_URL_STS"} <= set(
        _CLOUD_CREDENTIAL_VARS)
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"


def test_after_cleaning_boto3_finds_no_credentials_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the test keys, boto3's whole chain comes up empty: no provider is left to ask."""
    import boto3

    for name, value in _RUNNER_ENV.items():
        monkeypatch.setenv(name, value)
    _clean_cloud_env(monkeypatch)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    assert boto3.session.Session().get_credentials() is None
