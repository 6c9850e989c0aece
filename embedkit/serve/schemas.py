"""Request and response bodies (they make the OpenAPI schema at /openapi.json).

Types are strict: ``"k": "5"`` is a wrong type (422), not a number in disguise. Limits that depend on the
server's options (texts per request, text length, ``k``) are checked by the endpoints.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

Mode = Literal["dense", "bm25", "hybrid"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Body):
    query: StrictStr = Field(min_length=1, description="the query text")
    k: StrictInt = Field(10, ge=1, description="hits to return (at most the server's --max-k)")
    mode: Mode = Field("dense", description="dense (FAISS), bm25, or hybrid (reciprocal rank fusion of both)")
    index: StrictStr | None = Field(None, description="index name (default: the first index served)")


class HitOut(BaseModel):
    id: str
    score: float
    title: str | None
    text: str | None
    parent_id: str | None = Field(description="the document a chunk belongs to; null for a whole document")


class SearchResponse(BaseModel):
    index: str
    mode: Mode
    k: int
    version: int = Field(description="writes applied to the index when the search ran")
    took_ms: float = Field(description="server-side time, from the request to the response")
    hits: list[HitOut]


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request; token-id inputs are not supported."""
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may add fields this server does not use
    input: StrictStr | list[StrictStr] = Field(description="a text or a list of texts")
    model: StrictStr = Field(description="an index name (its model encodes) or the name of a served model")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, description="must equal the model's dimension when given")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class DocumentIn(_Body):
    id: StrictStr = Field(min_length=1, max_length=512)
    text: StrictStr
    title: StrictStr = ""


class DocumentsRequest(_Body):
    documents: list[DocumentIn] = Field(min_length=1)
    mode: Literal["add", "upsert"] = Field("upsert", description="add refuses ids already present (409)")
    index: StrictStr | None = None


class WriteResponse(BaseModel):
    index: str
    version: int
    count: int = Field(description="rows (documents or chunks) in the index after the write")


class DocumentsResponse(WriteResponse):
    documents: int
    added: int
    replaced: int
    rows: int


class DeleteResponse(WriteResponse):
    deleted: list[str]
    rows_removed: int


class DocumentOut(BaseModel):
    index: str
    id: str
    rows: list[HitOut] = Field(description="the document itself, or its chunks in order (score 0)")


class IndexStatus(BaseModel):
    rows: int
    version: int
    bm25: bool
    model: str | None
    chunked: bool
    generation: str | None = Field(description="the saved generation of the folder that the served state builds on")
    unsaved_writes: bool = Field(description="writes are logged but not yet saved as a generation (meanwhile the "
                                             "server holds the folder's writer lock)")


class Health(BaseModel):
    status: Literal["ok"]
    writes: bool
    indexes: dict[str, IndexStatus]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: int


class ErrorOut(BaseModel):
    error: ErrorDetail
