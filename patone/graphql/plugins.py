"""Plugins in the API: list them with this company's settings, turn them on, configure them."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.graphql.context import Context
from patone.graphql.parts import part
from patone.graphql.types import UserError, attempt
from patone.plugins import config as service
from patone.plugins.checks import check_plugin


@strawberry.type(description="An installed plugin as this company has it (secrets masked).")
class Plugin:
    name: str
    title: str
    description: str
    enabled: bool
    default_enabled: bool
    config: JSON
    settings_schema: JSON

    @classmethod
    def from_state(cls, state: service.PluginState) -> Plugin:
        return cls(
            name=state.name,
            title=state.title,
            description=state.description,
            enabled=state.enabled,
            default_enabled=state.default_enabled,
            config=JSON(state.config),
            settings_schema=JSON(state.settings_schema),
        )


@strawberry.type
class PluginPayload:
    plugin: Plugin | None
    user_errors: list[UserError]


@strawberry.type(description="What trying a plugin out gave.")
class PluginTest:
    ok: bool
    message: str
    detail: JSON


@strawberry.type
class PluginTestPayload:
    result: PluginTest | None
    user_errors: list[UserError]


@part("Query", 100)
@strawberry.type
class PluginQueries:
    @strawberry.field
    async def plugins(self, info: Info[Context, None]) -> list[Plugin]:
        states = await service.plugin_states(info.context.tenant, info.context.actor)
        return [Plugin.from_state(s) for s in states]


@part("Mutation", 80)
@strawberry.type
class PluginMutations:
    @strawberry.mutation(
        description="Turn a plugin on or off and/or change its settings (a masked secret sent "
        "back unchanged keeps its value)."
    )
    async def configure_plugin(
        self,
        info: Info[Context, None],
        name: str,
        enabled: bool | None = None,
        config: JSON | None = None,
    ) -> PluginPayload:
        ctx = info.context
        if config is not None and not isinstance(config, dict):
            return PluginPayload(
                plugin=None,
                user_errors=[
                    UserError(field="config", code="invalid", message="must be an object")
                ],
            )
        state, errors = await attempt(
            service.configure_plugin(ctx.tenant, ctx.actor, name, enabled=enabled, config=config)
        )
        return PluginPayload(plugin=Plugin.from_state(state) if state else None, user_errors=errors)

    @strawberry.mutation(
        description="Try a plugin once with the saved settings (enabled or not): send a test "
        "email or SMS to `to`, work out a route, or store and read back a file."
    )
    async def test_plugin(
        self, info: Info[Context, None], name: str, to: str | None = None
    ) -> PluginTestPayload:
        ctx = info.context
        result, errors = await attempt(check_plugin(ctx.tenant, ctx.actor, name, to=to))
        return PluginTestPayload(
            result=PluginTest(ok=result.ok, message=result.message, detail=JSON(result.detail))
            if result
            else None,
            user_errors=errors,
        )
