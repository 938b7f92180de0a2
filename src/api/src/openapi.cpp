// The OpenAPI 3 document of the API. Kept true by api_routes_test.cpp (every route of routes()
// is here and nothing else) and tests/integration/test_api_openapi.py (the server answers each
// operation as documented).
#include "sf/api/api.h"

namespace sf::api {

const std::string& openapi_document() {
  static const std::string doc = R"json({
  "openapi": "3.0.3",
  "info": {
    "title": "StreamFlex control plane API",
    "version": "1.0.0",
    "description": "Streams, stream keys, viewer tokens, API keys and webhook deliveries. Authenticate with 'Authorization: Bearer <api key>'. Scopes: admin (everything), streams (streams, stream keys, live state, deliveries), tokens (read streams, issue viewer tokens), ingest (publish checks of an ingest running alone). Errors are {\"error\": \"...\"}."
  },
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": {
    "/api/openapi.json": {
      "get": {"summary": "This document", "security": [], "operationId": "openapi",
              "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}}}
    },
    "/api/whoami": {
      "get": {"summary": "The API key making the call", "operationId": "whoami", "x-scopes": [],
              "responses": {"200": {"description": "Key id, name and scopes", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WhoAmI"}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/api/streams": {
      "get": {"summary": "List streams with their live state", "operationId": "listStreams", "x-scopes": ["streams", "tokens"],
              "responses": {"200": {"description": "Streams", "content": {"application/json": {"schema": {"type": "object", "required": ["streams"], "properties": {"streams": {"type": "array", "items": {"$ref": "#/components/schemas/Stream"}}}}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}}},
      "post": {"summary": "Create a stream and its first stream key (shown once)", "operationId": "createStream", "x-scopes": ["streams"],
               "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamCreate"}}}},
               "responses": {"201": {"description": "The stream and its key", "content": {"application/json": {"schema": {"type": "object", "required": ["stream", "key"], "properties": {"stream": {"$ref": "#/components/schemas/Stream"}, "key": {"$ref": "#/components/schemas/NewKey"}}}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "409": {"$ref": "#/components/responses/Conflict"},
                             "413": {"$ref": "#/components/responses/TooLarge"}}}
    },
    "/api/streams/{name}": {
      "parameters": [{"$ref": "#/components/parameters/name"}],
      "get": {"summary": "One stream", "operationId": "getStream", "x-scopes": ["streams", "tokens"],
              "responses": {"200": {"description": "The stream", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stream"}}}},
                            "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                            "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}},
      "patch": {"summary": "Change settings", "operationId": "updateStream", "x-scopes": ["streams"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamSettings"}}}},
                "responses": {"200": {"description": "The stream", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stream"}}}},
                              "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                              "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"},
                              "413": {"$ref": "#/components/responses/TooLarge"}}},
      "delete": {"summary": "Delete the stream and its keys", "operationId": "deleteStream", "x-scopes": ["streams"],
                 "responses": {"204": {"description": "Deleted"}, "400": {"$ref": "#/components/responses/BadRequest"},
                               "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"},
                               "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/api/streams/{name}/keys": {
      "parameters": [{"$ref": "#/components/parameters/name"}],
      "get": {"summary": "The stream's keys (never the secrets)", "operationId": "listStreamKeys", "x-scopes": ["streams"],
              "responses": {"200": {"description": "Keys", "content": {"application/json": {"schema": {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": {"$ref": "#/components/schemas/StreamKey"}}}}}}},
                            "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                            "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}},
      "post": {"summary": "Add a key (shown once)", "operationId": "createStreamKey", "x-scopes": ["streams"],
               "responses": {"201": {"description": "The key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewKey"}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/api/streams/{name}/keys/{id}/rotate": {
      "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Replace an active key; the old one keeps working for grace_s seconds", "operationId": "rotateStreamKey", "x-scopes": ["streams"],
               "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {"grace_s": {"type": "integer", "minimum": 0, "maximum": 2592000, "description": "Default: api.rotate_grace"}}}}}},
               "responses": {"201": {"description": "The new key and the old key's end", "content": {"application/json": {"schema": {"type": "object", "required": ["id", "key", "old"], "properties": {"id": {"type": "string"}, "key": {"type": "string"}, "old": {"type": "object", "required": ["id", "expires_ms"], "properties": {"id": {"type": "string"}, "expires_ms": {"type": "integer"}}}}}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"},
                             "409": {"$ref": "#/components/responses/Conflict"}, "413": {"$ref": "#/components/responses/TooLarge"}}}
    },
    "/api/streams/{name}/keys/{id}": {
      "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/id"}],
      "delete": {"summary": "Revoke a key now", "operationId": "revokeStreamKey", "x-scopes": ["streams"],
                 "responses": {"204": {"description": "Revoked"}, "400": {"$ref": "#/components/responses/BadRequest"},
                               "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"},
                               "404": {"$ref": "#/components/responses/NotFound"}, "409": {"$ref": "#/components/responses/Conflict"}}}
    },
    "/api/streams/{name}/tokens": {
      "parameters": [{"$ref": "#/components/parameters/name"}],
      "post": {"summary": "Issue a signed viewer token", "operationId": "issueToken", "x-scopes": ["tokens"],
               "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {"ttl_s": {"type": "integer", "minimum": 1, "description": "Default: api.token_ttl"}, "client_ip": {"type": "string", "description": "Bind the token to this viewer address"}}}}}},
               "responses": {"201": {"description": "The token and a playback URL carrying it", "content": {"application/json": {"schema": {"type": "object", "required": ["token", "expires_ms", "playback_url"], "properties": {"token": {"type": "string"}, "expires_ms": {"type": "integer"}, "playback_url": {"type": "string"}}}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"},
                             "413": {"$ref": "#/components/responses/TooLarge"}, "503": {"$ref": "#/components/responses/Unavailable"}}}
    },
    "/api/apikeys": {
      "get": {"summary": "API keys (never the secrets)", "operationId": "listApiKeys", "x-scopes": ["admin"],
              "responses": {"200": {"description": "Keys", "content": {"application/json": {"schema": {"type": "object", "required": ["apikeys"], "properties": {"apikeys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}}}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}}},
      "post": {"summary": "Create an API key (shown once)", "operationId": "createApiKey", "x-scopes": ["admin"],
               "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "scopes"], "additionalProperties": false, "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128}, "scopes": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Scope"}}}}}}},
               "responses": {"201": {"description": "The key", "content": {"application/json": {"schema": {"type": "object", "required": ["id", "key"], "properties": {"id": {"type": "string"}, "key": {"type": "string"}, "name": {"type": "string"}, "scopes": {"type": "array", "items": {"$ref": "#/components/schemas/Scope"}}}}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "413": {"$ref": "#/components/responses/TooLarge"}}}
    },
    "/api/apikeys/{id}": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "One API key", "operationId": "getApiKey", "x-scopes": ["admin"],
              "responses": {"200": {"description": "The key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiKey"}}}},
                            "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"},
                            "404": {"$ref": "#/components/responses/NotFound"}}},
      "delete": {"summary": "Revoke an API key", "operationId": "revokeApiKey", "x-scopes": ["admin"],
                 "responses": {"204": {"description": "Revoked"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                               "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/api/webhooks/deliveries": {
      "get": {"summary": "Recent webhook deliveries, newest first", "operationId": "listDeliveries", "x-scopes": ["streams"],
              "parameters": [{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
              "responses": {"200": {"description": "Deliveries", "content": {"application/json": {"schema": {"type": "object", "required": ["deliveries"], "properties": {"deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}}}}}},
                            "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                            "403": {"$ref": "#/components/responses/Forbidden"}}}
    },
    "/api/ingest/check": {
      "post": {"summary": "Publish check for an ingest running alone: the stream key, then the on_publish webhook", "operationId": "ingestCheck", "x-scopes": ["ingest"],
               "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key"], "additionalProperties": false, "properties": {"key": {"type": "string"}, "app": {"type": "string"}, "addr": {"type": "string"}}}}}},
               "responses": {"200": {"description": "Allowed (with the stream) or not", "content": {"application/json": {"schema": {"type": "object", "required": ["allow"], "properties": {"allow": {"type": "boolean"}, "stream": {"type": "string"}, "key_id": {"type": "string"}, "takeover": {"type": "boolean"}, "profile": {"type": "string", "description": "Transcoding ladder; empty: the ingest's default"}, "latency": {"type": "string"}, "part_target_ms": {"type": "integer"}, "segment_target_ms": {"type": "integer"}}}}}},
                             "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                             "403": {"$ref": "#/components/responses/Forbidden"}, "413": {"$ref": "#/components/responses/TooLarge"}}}
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key"}},
    "parameters": {
      "name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
      "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}
    },
    "responses": {
      "BadRequest": {"description": "Malformed JSON or an invalid field", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "No API key, or not a valid one", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Forbidden": {"description": "The API key lacks the scope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "No such resource", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Conflict": {"description": "Conflicts with the current state", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "TooLarge": {"description": "Request body too large", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unavailable": {"description": "Not configured or not available now", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
      "Scope": {"type": "string", "enum": ["admin", "streams", "tokens", "ingest"]},
      "WhoAmI": {"type": "object", "required": ["id", "name", "scopes"], "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "scopes": {"type": "array", "items": {"$ref": "#/components/schemas/Scope"}}}},
      "StreamSettings": {"type": "object", "additionalProperties": false, "properties": {
        "visibility": {"type": "string", "enum": ["public", "token"]},
        "profile": {"type": "string", "description": "Transcoding ladder: default (transcode.profile), passthrough, or a configured profile"},
        "latency": {"type": "string", "enum": ["ll-hls", "hls"], "description": "ll-hls: parts, preload hints, blocking reloads; hls: standard HLS (whole segments, HOLD-BACK 3 target durations). Applies at the stream's next publish"},
        "part_target_ms": {"type": "integer", "minimum": 100, "maximum": 2000, "description": "LL-HLS PART-TARGET; applies at the next publish"},
        "segment_target_ms": {"type": "integer", "minimum": 500, "maximum": 10000, "description": "At least part_target_ms; the keyframe grid of a transcoded stream; applies at the next publish"},
        "takeover": {"type": "boolean", "description": "A new publisher replaces a live one"}}},
      "StreamCreate": {"allOf": [{"$ref": "#/components/schemas/StreamSettings"}, {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}}]},
      "Live": {"type": "object", "required": ["publishing"], "properties": {
        "publishing": {"type": "boolean"}, "since_ms": {"type": "integer", "nullable": true},
        "bitrate_bps": {"type": "number", "nullable": true}, "fps": {"type": "number", "nullable": true},
        "keyframe_interval_s": {"type": "number", "nullable": true}, "width": {"type": "integer", "nullable": true},
        "height": {"type": "integer", "nullable": true}, "video_codec": {"type": "string", "nullable": true},
        "audio_codec": {"type": "string", "nullable": true}, "viewers": {"type": "integer", "nullable": true}}},
      "Stream": {"type": "object", "required": ["name", "visibility", "profile", "latency", "part_target_ms", "segment_target_ms", "takeover", "created_ms", "updated_ms", "rtmp_url", "playback_url", "live"], "properties": {
        "name": {"type": "string"}, "visibility": {"type": "string", "enum": ["public", "token"]},
        "profile": {"type": "string"}, "latency": {"type": "string", "enum": ["ll-hls", "hls"]},
        "part_target_ms": {"type": "integer"}, "segment_target_ms": {"type": "integer"}, "takeover": {"type": "boolean"},
        "created_ms": {"type": "integer"}, "updated_ms": {"type": "integer"},
        "rtmp_url": {"type": "string", "description": "Publish to rtmp_url + '/' + key"},
        "playback_url": {"type": "string"}, "live": {"$ref": "#/components/schemas/Live"}}},
      "NewKey": {"type": "object", "required": ["id", "key"], "properties": {"id": {"type": "string"}, "key": {"type": "string", "description": "The secret, shown once"}}},
      "StreamKey": {"type": "object", "required": ["id", "created_ms", "expires_ms", "revoked_ms", "state"], "properties": {
        "id": {"type": "string"}, "created_ms": {"type": "integer"}, "expires_ms": {"type": "integer", "nullable": true},
        "revoked_ms": {"type": "integer", "nullable": true}, "state": {"type": "string", "enum": ["active", "grace", "revoked"]}}},
      "ApiKey": {"type": "object", "required": ["id", "name", "scopes", "created_ms", "revoked_ms"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "scopes": {"type": "array", "items": {"$ref": "#/components/schemas/Scope"}},
        "created_ms": {"type": "integer"}, "revoked_ms": {"type": "integer", "nullable": true}}},
      "Delivery": {"type": "object", "required": ["id", "event", "stream", "url", "state", "attempts", "created_ms", "updated_ms"], "properties": {
        "id": {"type": "integer"}, "event": {"type": "string"}, "stream": {"type": "string"}, "url": {"type": "string"},
        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "outcome": {"type": "string", "nullable": true, "enum": ["allow", "deny", null]},
        "attempts": {"type": "integer"}, "last_status": {"type": "integer", "nullable": true},
        "last_error": {"type": "string", "nullable": true}, "created_ms": {"type": "integer"}, "updated_ms": {"type": "integer"}}}
    }
  }
})json";
  return doc;
}

}  // namespace sf::api
