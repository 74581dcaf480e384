"""A GET-only client for GitHub's REST API, on the standard library: what the loop's plan steps need, so they
run from a checkout without installing anything (``PYTHONPATH=src``)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_VERSION = "2022-11-28"


class GitHubError(Exception):
    """GitHub answered with an error status (or not at all)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class GitHubAPI:
    """GET-only client for api.github.com (or ``$GITHUB_API_URL``); JSON in, JSON out."""

    base_url: str = "https://api.github.com"
    token: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GitHubAPI:
        return cls(
            base_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            token=env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None,
        )

    def get(self, path: str, **query) -> Any:
        """The decoded JSON answer (a dict or a list, as the endpoint returns)."""
        url = f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            detail = e.read(500).decode("utf-8", "replace")
            raise GitHubError(f"GET {path}: HTTP {e.code}: {detail}", e.code) from None
        except (urllib.error.URLError, TimeoutError, ValueError) as e:
            raise GitHubError(f"GET {path}: {e}") from None
