#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "sf/api/api.h"
#include "sf/api/http_call.h"
#include "sf/api/webhooks.h"

namespace sf::api {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

TEST(OpenApi, DocumentIsOpenApi3) {
  auto doc = json::parse(openapi_document());
  EXPECT_TRUE(doc["openapi"].get<std::string>().starts_with("3."));
  EXPECT_TRUE(doc["paths"].is_object());
}

TEST(OpenApi, EveryRouteIsDocumentedWithItsScopes) {
  auto doc = json::parse(openapi_document());
  for (auto& r : routes()) {
    SCOPED_TRACE(r.method + " " + r.path);
    ASSERT_TRUE(doc["paths"].contains(r.path));
    auto& item = doc["paths"][r.path];
    ASSERT_TRUE(item.contains(lower(r.method)));
    auto& op = item[lower(r.method)];
    if (!r.authenticated) {
      EXPECT_EQ(op["security"], json::array());
    } else {
      EXPECT_EQ(op["x-scopes"].get<std::vector<std::string>>(), r.scopes);
      EXPECT_TRUE(op["responses"].contains("401"));
      if (!r.scopes.empty()) {
        EXPECT_TRUE(op["responses"].contains("403"));
      }
    }
  }
}

TEST(OpenApi, EveryDocumentedOperationIsARoute) {
  auto doc = json::parse(openapi_document());
  std::set<std::pair<std::string, std::string>> served;
  for (auto& r : routes()) served.insert({lower(r.method), r.path});
  for (auto& [path, item] : doc["paths"].items())
    for (auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      EXPECT_TRUE(served.contains({method, path})) << method << " " << path;
    }
}

TEST(OpenApi, EveryReferenceResolves) {
  auto doc = json::parse(openapi_document());
  std::vector<std::string> refs;
  auto walk = [&](auto& self, const json& j) -> void {
    if (j.is_object()) {
      for (auto& [k, v] : j.items()) {
        if (k == "$ref") refs.push_back(v.template get<std::string>());
        self(self, v);
      }
    } else if (j.is_array()) {
      for (auto& v : j) self(self, v);
    }
  };
  walk(walk, doc);
  ASSERT_FALSE(refs.empty());
  for (auto& ref : refs) {
    ASSERT_TRUE(ref.starts_with("#/")) << ref;
    EXPECT_TRUE(doc.contains(json::json_pointer(ref.substr(1)))) << ref;
  }
}

TEST(HttpUrl, ParsesHostPortAndTarget) {
  auto u = parse_http_url("http://127.0.0.1:8090/api/x?y=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->endpoint.host, "127.0.0.1");
  EXPECT_EQ(u->endpoint.port, 8090);
  EXPECT_EQ(u->target, "/api/x?y=1");
  auto d = parse_http_url("http://localhost");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->endpoint.port, 80);
  EXPECT_EQ(d->target, "/");
}

TEST(HttpUrl, RefusesWhatItCannotCall) {
  EXPECT_FALSE(parse_http_url("https://example.com/"));
  EXPECT_FALSE(parse_http_url("http://user:pw@host:80/"));
  EXPECT_FALSE(parse_http_url("http:///x"));
  EXPECT_FALSE(parse_http_url("http://h:80/a b"));
  EXPECT_FALSE(parse_http_url("http://h:80/a\r\nX: y"));
}

// RFC 4231 test case 2.
TEST(Webhooks, SignatureIsHmacSha256) {
  EXPECT_EQ(webhook_signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Webhooks, UnreachableOnPublishAppliesTheDefault) {
  for (bool default_allow : {false, true}) {
    WebhookConfig c;
    c.on_publish = "http://127.0.0.1:1/hook";  // nothing listens on port 1
    c.timeout = std::chrono::milliseconds(500);
    c.on_publish_default_allow = default_allow;
    Webhooks hooks(c, nullptr);
    EXPECT_EQ(hooks.allow_publish({"k", "live", "127.0.0.1:5"}, {"s", "id", false}), default_allow);
  }
}

}  // namespace
}  // namespace sf::api
