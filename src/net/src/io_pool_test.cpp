#include "sf/net/io_pool.h"

#include <gtest/gtest.h>

namespace sf::net {

TEST(ParseEndpoint, AcceptsHostAndPort) {
  auto ep = parse_endpoint("127.0.0.1:1935");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 1935);
}

TEST(ParseEndpoint, AcceptsBracketedIpv6) {
  auto ep = parse_endpoint("[::1]:0");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 0);
}

TEST(ParseEndpoint, RejectsMissingOrBadPort) {
  EXPECT_FALSE(parse_endpoint("127.0.0.1"));
  EXPECT_FALSE(parse_endpoint("127.0.0.1:70000"));
  EXPECT_FALSE(parse_endpoint(":80"));
}

}  // namespace sf::net
