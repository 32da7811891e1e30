"""Request and response bodies of the v1 JSON API (POST /v1/models/{name}/predict, GET /v1/models)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# strict: no "1.0" strings, no true/false as numbers; finite: NaN and Infinity literals are refused
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"instances": [[0.0, 1.5, 3.0]], "return_votes": False}]})

    instances: list[list[Feature]] = Field(description="rows of features, one list per row")
    return_votes: bool = Field(False, description="ensemble only: add each member's predicted class per row")


class RecordsRequest(BaseModel):
    """A table model's body: one JSON object per row, by column name (serving.records checks the values)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"instances": [{"age": 39, "city": "paris", "income": None}], "return_votes": False}]})

    instances: list[dict[str, Any]] = Field(description="records, one JSON object per row; a missing key or "
                                                        "null is a missing value")
    return_votes: bool = Field(False, description="ensemble only: add each member's predicted class per row")


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="the predicted class label per row (a regression model: the "
                                               "predicted value)")
    probabilities: list[list[float]] | None = Field(None, description="class probabilities per row, in `classes` "
                                                                     "order (absent for a regression model)")
    model: str
    version: str
    votes: list[list[Any]] | None = Field(None, description="per row, each member's predicted class "
                                                            "(only with return_votes)")


class ModelInfo(BaseModel):
    name: str = Field(description="the name in URLs: ensemble or student")
    aliases: list[str] = Field(description="other names this model answers to, e.g. its registered name")
    version: str
    source: str = Field(description="the models:/ URI it was loaded from, or bundle:<version> for a bundle "
                                    "directory (server paths are not shown)")
    kind: str
    method: str
    members: int
    n_features: int = Field(description="values per row: features, or a table model's columns")
    classes: list[Any] = Field(description="the labels predictions are drawn from (empty for a regression model)")
    task: str = Field("classification", description="classification, or regression (predictions are numbers)")
    inputs: list[dict[str, str]] | None = Field(None, description="a table model's columns ({name, kind}: "
                                                                  "numeric, categorical or datetime); null: rows "
                                                                  "of numbers")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorResponse(BaseModel):
    error: str = Field(description="what must hold, but got what")
    field: str | None = Field(None, description="the field or header at fault")
