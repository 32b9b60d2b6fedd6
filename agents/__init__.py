"""The three agents: culture expert, contrast critic and refiner. They do not know the graph."""

from caredio.agents.contrast_critic import ContrastCritic
from caredio.agents.culture_expert import CultureExpert
from caredio.agents.refiner import Refiner

__all__ = ["ContrastCritic", "CultureExpert", "Refiner"]
