"""Travel times come through the plugin manager: the company's maps provider where it answers
usably, the always-on offline provider where it does not."""

from __future__ import annotations

from typing import Any

from patone.core.dispatch.travel import travel_estimates, travel_matrix
from patone.plugins import config as plugins
from patone.plugins.builtin.maps_offline import estimate
from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import GeoPoint, PluginInfo, RouteEstimate
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import MORNING, SCENE, east_of_scene
from tests.support import plugin_runtime

ADMIN = actor_for("admin")
SCENE_POINT = GeoPoint(*SCENE)
DRIVERS = [GeoPoint(*east_of_scene(1)), GeoPoint(*east_of_scene(3))]


class CompanyMaps:
    """A company's own maps provider, answering whatever matrix it is told to."""

    def __init__(self) -> None:
        self.rows: Any = None

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="maps-company", title="Company maps")

    @hookimpl(tryfirst=True)
    def distance_matrix(self, origins: list[Any], destinations: list[Any]) -> Any:
        return self.rows


def _offline(origins: list[GeoPoint]) -> list[RouteEstimate]:
    return [estimate(origin, SCENE_POINT, MORNING) for origin in origins]


async def test_with_no_plugin_runtime_the_offline_provider_answers_through_the_manager(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    for tenant in (acme, bolt):
        found = await travel_estimates(tenant, DRIVERS, SCENE_POINT, MORNING)
        assert found == _offline(DRIVERS)
        assert all(e is not None and e.provider == "maps-offline" for e in found)
    assert await travel_matrix(acme, [], [SCENE_POINT], MORNING) == []
    assert await travel_matrix(acme, DRIVERS, [], MORNING) == [[], []]


async def test_a_companys_provider_answers_first_and_offline_stands_in_for_a_bad_answer(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    maps = CompanyMaps()
    with plugin_runtime(maps):
        await plugins.configure_plugin(acme, ADMIN, "maps-company", enabled=True)
        mine = RouteEstimate(distance_m=900, duration_s=120, provider="maps-company")
        maps.rows = [[mine], None]  # the second driver has no road to the scene
        assert await travel_estimates(acme, DRIVERS, SCENE_POINT, MORNING) == [mine, None]
        # Bolt never turned it on: the offline provider answers.
        assert await travel_estimates(bolt, DRIVERS, SCENE_POINT, MORNING) == _offline(DRIVERS)
        maps.rows = [[mine]]  # one row for two drivers: not an answer the engine can use
        assert await travel_estimates(acme, DRIVERS, SCENE_POINT, MORNING) == _offline(DRIVERS)
        maps.rows = None  # no answer at all
        assert await travel_estimates(acme, DRIVERS, SCENE_POINT, MORNING) == _offline(DRIVERS)
