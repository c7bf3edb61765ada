"""The site's plant model (`plant:` in the site file): CIM-style topology, validated with YAML paths,
turned into the plain data the firmware's solver runs (firmware_sim.plant)."""

from gateway.site.plant.model import PlantModel

__all__ = ["PlantModel"]
