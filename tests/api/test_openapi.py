"""The OpenAPI document describes every route, its bodies and its security."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from sipbox.api import PUBLIC_PATHS
from sipbox.api.factory import iter_routes


async def test_every_route_is_documented_with_schemas(
    api: FastAPI, anon: httpx.AsyncClient
) -> None:
    document = (await anon.get("/openapi.json")).json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]
    routes = [
        info
        for info in iter_routes(api)
        if isinstance(info.route, APIRoute) and info.route.include_in_schema  # not web pages
    ]
    assert {info.path for info in routes} == set(paths)
    for info in routes:
        route = info.route
        assert isinstance(route, APIRoute)
        for method in info.methods:
            operation = paths[info.path][method.lower()]
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, (method, info.path)
            if route.status_code != 204:
                media = responses[success[0]]["content"]
                # JSON everywhere, except exports (``/cdr.csv``) and ``/metrics``, which
                # document their type.
                content = (
                    media.get("application/json")
                    or media.get("text/csv")
                    or media.get("application/yaml")  # /export
                    or media["text/plain"]
                )
                assert content["schema"], (method, info.path)
            if method in ("POST", "PATCH"):
                request = operation["requestBody"]["content"]
                if "application/yaml" in request:  # /import takes the YAML document as text
                    assert request["application/yaml"]["example"], (method, info.path)
                    continue
                body = request["application/json"]["schema"]
                assert "$ref" in body, (method, info.path)
            if info.path in PUBLIC_PATHS:
                assert operation["security"] == []
            else:
                assert operation["security"] == [{"bearerAuth": []}]
                for code in ("401", "403", "422"):
                    ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in schemas
    user_out = schemas["UserOut"]["properties"]
    assert not {"password", "ha1_md5", "ha1_sha256"} & set(user_out)
    assert schemas["UserCreate"]["properties"]["password"]["writeOnly"] is True


async def test_docs_page_is_served(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
