"""The two failures a depsolve reports to its caller.

They cross process boundaries (the API's solver processes, Celery result backends), so they
carry nothing but a message and a few plain attributes, and pickle as such.
"""

from __future__ import annotations


class DepsolveError(Exception):
    """The request cannot be satisfied: unknown names, excluded names, broken dependencies.

    `message` is the text a `composer-cli` user sees; it names the package and the missing or
    conflicting requirement.  `kind` is `"marking"` when the request itself names nothing
    installable (dnf's MarkingError) and `"depsolve"` when dependencies cannot be resolved.
    """

    def __init__(self, message: str, kind: str = "depsolve") -> None:
        super().__init__(message, kind)
        self.message = message
        self.kind = kind

    def __str__(self) -> str:
        return self.message


class RepositoryError(Exception):
    """A repository cannot be used: unreachable, broken metadata, bad definition.

    The message always names the repository id and the URL that failed, because the user has to
    fix one of the two.
    """

    def __init__(self, message: str, repo_id: str = "", url: str = "") -> None:
        super().__init__(message, repo_id, url)
        self.message = message
        self.repo_id = repo_id
        self.url = url

    def __str__(self) -> str:
        return self.message
