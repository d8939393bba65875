"""Rulebook parameters: one frozen profile object per code regime.

Every number a rule or a placement model uses lives here, so a new profile is
added by constructing another :class:`Profile`, without touching placement code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """Parameters of the rulebook, with their sources.

    - ``smoke_radius_m``: every coverage point within this distance of a smoke
      detector. NFPA 72 (2016) 17.7.3.2.3.1(2): 0.7 x 9.14 m listed spacing =
      6.40 m; BS 5839-1: 7.5 m radius. In a room with ``void`` cells the
      distance is the in-room path length (docs/rulebook.md).
    - ``detector_method``: ``"radius"`` checks the 0.7 S radius alone (rule
      ``smoke.coverage``); ``"spacing"`` adds the smooth-ceiling spacing method
      of NFPA 72 (2016) 17.7.3.2.3.1(1), rule ``smoke.spacing``: detectors at
      most the listed spacing S apart and within S/2 of every wall, measured at
      right angles, i.e. every tile inside the S x S square of a detector.
    - ``listed_spacing_m`` S = 9.14 m: the 30 ft nominal spacing of spot-type
      smoke detectors on smooth ceilings, NFPA 72 (2016) 17.7.3.2.3.1.
    - ``corridor_width_m`` = 3.05 m (10 ft): in stretches of the room no wider
      than this (corridors, narrow arms) the spacing method yields to the 0.7 S
      radius, which lets detectors stand farther than S apart along them. The
      annex figure on corridor spacing (A.17.7.3.2.3.1 in the 2016 edition;
      figure number not confirmed here) tabulates 10 ft wide -> 41 ft and 25 ft
      wide -> 34 ft between detectors, i.e. 2 sqrt((0.7 S)^2 - (W/2)^2); only
      the 10 ft row is used here, as the narrowest the figure shows.
    - ``smoke_to_air_m``: detector to air supply/return, 1.5 m (NFPA 72 A.17.7.4.1:
      0.91 m from the diffuser edge, plus the diffuser half-width and margin).
    - ``smoke_to_light_m``: detector to light fitting, 1.0 m (BS 5839-1 asks 0.5 m
      from fittings; kept at 1.0 m for heat plumes of luminaires).
    - ``lamp_flux_lm`` F = 3600 lm, ``utilisation_factor`` UF = 0.6,
      ``maintenance_factor`` MF = 0.8: lumen method N >= E*A/(F*UF*MF); with a
      luminaire file, F is that luminaire's flux. MF also scales every
      point-by-point illuminance (maintained values, EN 12464-1).
    - ``luminaire``: a shipped luminaire file's name for rooms that name none;
      None: a Lambertian source of ``lamp_flux_lm`` (the distribution of the
      shipped ``generic-led-panel-600``).
    - ``spacing_to_height`` SHR = 1.5: every point within SHR*Hm/sqrt(2) of a light.
    - ``work_plane_m`` = 0.8: Hm = ceiling height - work plane.
    - ``supply_rate_l_s_m2`` q_area = 5.0 L/s/m^2 (~1 cfm/ft^2) and
      ``diffuser_flow_l_s`` q_diff = 120 L/s; coverage radius
      sqrt(q_diff/q_area)/sqrt(2) after the ASHRAE separation distance.
    - ``return_min_area_m2`` = 9: returns >= ceil(supplies/2) from this area (project
      convention); ``return_to_supply_m`` = 1.8 m against short-circuiting.
    - ``illuminance_lx``: maintained illuminance by room type, EN 12464-1.
    - ``uniformity_target``: U0 = Emin/Eavg at least this (rule
      ``light.uniformity``), EN 12464-1:2021 tables: 0.60 for writing/reading
      offices, conference rooms and classrooms; 0.40 for corridors, entrance
      halls, toilets and stores.
    - ``wall_band_m`` = 0.5, ``wall_band_share`` = 0.15: the calculation area
      leaves out a band along the walls, 0.5 m, or 15 % of the room's shorter
      side when that is less (EN 12464-1:2021 calculation grid).
    - ``tie_break``: among compliant candidates with the fewest devices, the order
      in which the selector compares the rest: ``quality`` (U0 for lights, reach
      for the other types; compared to 0.01) and ``regularity`` (shared rows and
      columns, even pitch: :mod:`~ceilgrid_assets.core.engine.regularity`).
    - ``compare_at_bound``: components whose stage still asks every model once a
      candidate is proved to need the fewest devices, so that the tie-break
      chooses among them: the lights, whose uniformity occupants see. The other
      stages keep the first proved candidate (a quarter of a small room's time).
    """

    name: str
    smoke_radius_m: float = 6.40
    detector_method: str = "radius"
    listed_spacing_m: float = 9.14
    corridor_width_m: float = 3.05
    smoke_to_air_m: float = 1.50
    smoke_to_light_m: float = 1.00
    lamp_flux_lm: float = 3600.0
    luminaire: str | None = None
    utilisation_factor: float = 0.6
    maintenance_factor: float = 0.8
    spacing_to_height: float = 1.5
    work_plane_m: float = 0.8
    supply_rate_l_s_m2: float = 5.0
    diffuser_flow_l_s: float = 120.0
    return_min_area_m2: float = 9.0
    return_to_supply_m: float = 1.80
    illuminance_lx: dict[str, float] = field(
        default_factory=lambda: {
            "office": 500.0,
            "meeting": 500.0,
            "classroom": 300.0,
            "corridor": 100.0,
            "lobby": 200.0,
            "restroom": 200.0,
            "storage": 100.0,
        }
    )
    uniformity_target: dict[str, float] = field(
        default_factory=lambda: {"office": 0.6, "meeting": 0.6, "classroom": 0.6}
    )
    default_uniformity_target: float = 0.4
    wall_band_m: float = 0.5
    wall_band_share: float = 0.15
    tie_break: tuple[str, ...] = ("quality", "regularity")
    compare_at_bound: tuple[str, ...] = ("light",)

    @property
    def room_types(self) -> tuple[str, ...]:
        return tuple(self.illuminance_lx)

    def mounting_height_m(self, ceiling_height_m: float) -> float:
        """Hm: distance from the fitting to the work plane."""
        return ceiling_height_m - self.work_plane_m

    def light_radius_m(self, ceiling_height_m: float) -> float:
        return self.spacing_to_height * self.mounting_height_m(ceiling_height_m) / math.sqrt(2)

    @property
    def supply_radius_m(self) -> float:
        return math.sqrt(self.diffuser_flow_l_s / self.supply_rate_l_s_m2) / math.sqrt(2)

    def min_lights(self, area_m2: float, room_type: str, flux_lm: float | None = None) -> int:
        """Lumen method with ``flux_lm`` per fitting (default: ``lamp_flux_lm``)."""
        flux = self.lamp_flux_lm if flux_lm is None else flux_lm
        lumens = flux * self.utilisation_factor * self.maintenance_factor
        return _ceil_count(self.illuminance_lx[room_type] * area_m2 / lumens)

    def min_supplies(self, area_m2: float) -> int:
        if area_m2 <= 0:
            return 0
        return max(1, _ceil_count(self.supply_rate_l_s_m2 * area_m2 / self.diffuser_flow_l_s))

    def min_returns(self, area_m2: float, supplies: int) -> int:
        return _ceil_count(supplies / 2) if area_m2 >= self.return_min_area_m2 else 0

    def target_u0(self, room_type: str) -> float:
        return self.uniformity_target.get(room_type, self.default_uniformity_target)


def _ceil_count(value: float) -> int:
    """ceil() that ignores float noise such as 2.0000000000000004."""
    return int(math.ceil(round(value, 9)))


PROFILES: dict[str, Profile] = {
    "nfpa72": Profile(name="nfpa72"),
    "bs5839": Profile(name="bs5839", smoke_radius_m=7.50),
    "nfpa72-spacing": Profile(name="nfpa72-spacing", detector_method="spacing"),
}
DEFAULT_PROFILE = "nfpa72"


def get_profile(name: str | Profile) -> Profile:
    """Look a profile up by name; unknown names raise ``KeyError`` listing the known ones."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
