"""Recipes: YAML files that describe a whole compression run.

- `tfaccel.recipe.schema`: the pydantic models of the format.
- `tfaccel.recipe.sections`: the models of its sections (task, model, stages...).
- `tfaccel.recipe.registry`: `register_modifier`, how techniques join it.
- `tfaccel.recipe.loader`: `load_recipe`, `parse_recipe`, `RecipeError`.

This package imports no TensorFlow, so validating a recipe is fast.
"""
