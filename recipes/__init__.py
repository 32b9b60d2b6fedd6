"""Recipes that take CAReDiO's output further; shipped so `caredio export` can copy them."""
