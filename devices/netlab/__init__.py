"""Network lab: run devices, gateway and subscribers in separate network namespaces
shaped by a profile (``configs/profiles/*.yaml``)."""

from devices.netlab.lab import (
           Lab,
           LabError,
           LabUnavailable,
           LinkControl,
           check_capabilities,
)
from devices.netlab.profile import (
           Profile,
           ProfileError,
           available_profiles,
           load_profile,
           parse_profile,
)

__all__ = ["Lab", "LabError", "LabUnavailable", "LinkControl", "check_capabilities", "Profile", "ProfileError",
           "available_profiles", "load_profile", "parse_profile"]
