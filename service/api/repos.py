"""/repositories: register (clone in the background), list, show, settings, unregister.

A repository's secrets (its URL's credentials, its variables' values) go to the secrets store
before the event that refers to them, never into the log (``service.repo_secrets``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post, put

from projections import commands as c
from projections.events import RepoSettings
from service.api.deps import context, require_admin
from service.api.models import NewRepo, RepoOut, RepoSettingsIn
from service.api.problems import ApiError
from service.api.views import repo_out
from service.git_inputs import split_credentials, validate_url
from service.repo_secrets import RepoSecret


def _settings(data: RepoSettingsIn) -> RepoSettings:
    """The settings as the log records them: the variables by name only."""
    return RepoSettings(
        index_command=data.index_command,
        default_agent=data.default_agent,
        env_names=sorted(data.env),
    )


@post("/repositories", status_code=202)
async def register_repo(request: Request[Any, Any, Any], data: NewRepo) -> RepoOut:
    """Accepted: the clone runs in the background (cloneStatus cloning -> ready | failed)."""
    rt, user = await context(request)
    require_admin(user)
    try:
        url = validate_url(data.git_url)
    except ValueError as err:
        raise ApiError(422, "invalid_git_url", str(err)) from None
    shown, credentials = split_credentials(url)
    async with rt.repo_secrets.changing(data.name) as change:
        if data.name not in rt.state.repos.by_name:  # else refused, the secret left alone
            await change.write(RepoSecret(credentials=credentials, env=data.settings.env))
        await rt.engine.execute(
            c.RegisterRepo(
                repo=data.name,
                git_url=shown,
                branch=data.branch,
                description=data.description,
                settings=_settings(data.settings),
                credentials=credentials is not None,
            ),
            actor=user.user_id,
        )
    return repo_out(rt.state, rt.state.repos.by_name[data.name])


@get("/repositories")
async def list_repos(request: Request[Any, Any, Any]) -> list[RepoOut]:
    rt, _ = await context(request)
    return [repo_out(rt.state, repo) for repo in rt.state.repos.by_name.values()]


@get("/repositories/{name:str}")
async def get_repo(request: Request[Any, Any, Any], name: str) -> RepoOut:
    rt, _ = await context(request)
    repo = rt.state.repos.get(name)
    if repo is None:
        raise ApiError(404, "repo_not_found", f"no repository {name!r}")
    return repo_out(rt.state, repo)


@put("/repositories/{name:str}/settings")
async def change_settings(
    request: Request[Any, Any, Any], name: str, data: RepoSettingsIn
) -> RepoOut:
    """Replaces every setting; the variables' values are write-only (names come back)."""
    rt, user = await context(request)
    require_admin(user)
    async with rt.repo_secrets.changing(name) as change:
        await change.write(RepoSecret(credentials=change.previous.credentials, env=data.env))
        await rt.engine.execute(
            c.ChangeRepoSettings(repo=name, settings=_settings(data)), actor=user.user_id
        )
    return repo_out(rt.state, rt.state.repos.by_name[name])


@delete("/repositories/{name:str}", status_code=204)
async def unregister_repo(request: Request[Any, Any, Any], name: str) -> Response[None]:
    """409 while unfinished jobs use it; its clone is then removed in the background."""
    rt, user = await context(request)
    require_admin(user)
    async with rt.repo_secrets.changing(name) as change:
        await rt.engine.execute(c.UnregisterRepo(repo=name), actor=user.user_id)
        await change.remove()
    return Response(None, status_code=204)


ROUTES = [register_repo, list_repos, get_repo, change_settings, unregister_repo]
