"""The hand-written OpenAPI path of `POST /v1/search` (merged by openapi_spec.py; its rules apply: the real
`hca` client builds `post-search` from it, with the DSS's parameter names). No `security`: anonymous
callers search the public datasets, a caller with a token also those it may read."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                           "title": {"type": "string"}}}
_RESULTS = {"type": "object", "properties": {
    "es_query": {"type": "object", "description": "The query, as given."},
    "results": {"type": "array", "description": "{bundle_fqid, bundle_url, search_score (null), metadata "
                                                "(the document, raw only)}, by bundle_fqid.",
                "items": {"type": "object"}},
    "total_hits": {"type": "integer", "description": "Every match the caller may read, not only this page."}}}


def _param(name: str, description: str, *, enum: list[str] | None = None, type_: str = "string"
           ) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": type_}
    if enum:
        schema["enum"] = enum
    return {"name": name, "in": "query", "description": description, "required": False, "schema": schema}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def paths() -> dict[str, Any]:
    return {
        "/search": {"post": {
            "summary": "Find bundle versions by searching their metadata with an Elasticsearch query.",
            "description": "es_query is {} (every bundle version) or {\"query\": CLAUSE}, a CLAUSE one of "
                           "match_all, match, term, terms, range, wildcard, exists, bool, constant_score "
                           "over the bundle documents (files.<indexed JSON file>.FIELD, manifest.files.*, "
                           "meta.*, alias, ...); anything else is 400 naming it. Results are the bundle "
                           "versions the caller may read, ordered by bundle_fqid; a page that is not the "
                           "last is 206 with a Link to the next.",
            "parameters": [
                _param("replica", "Replica to search: aws or gcp (one index serves every replica; it "
                       "names the replica in bundle_url).", enum=["aws", "gcp"]),
                _param("output_format", "summary (default): bundle fqids and URLs; raw: also each "
                       "bundle's metadata document.", enum=["summary", "raw"]),
                _param("per_page", "Results per page: 10-500 for summary (default 100), at most 10 for raw "
                       "(default 10).", type_="integer"),
                _param("search_after", "The bundle_fqid of the last result of the previous page; the Link "
                       "header sets it (clients need not)."),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["es_query"],
                "properties": {"es_query": {"type": "object",
                                            "description": "Elasticsearch query ({} for everything)."}}}}}},
            "responses": {"200": _json("All (remaining) results.", _RESULTS),
                          "206": _json("A page of results; the Link header names the next.", _RESULTS),
                          "400": _json("Bad input: a malformed body or parameter, or a query clause this "
                                       "server does not support (the title names it).", _ERROR),
                          "503": _json("The search index is not available (the title says why).", _ERROR)}}},
    }
