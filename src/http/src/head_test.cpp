#include "head.h"

#include <gtest/gtest.h>

#include <string>

namespace sf::http {
namespace {

HeadParse parse(const std::string& text, SimpleHead& h) {
  return parse_simple_head(text, h);
}

TEST(SimpleHead, PlainGetIsParsedInPlace) {
  std::string text =
      "GET /live/a/video/index.m3u8?_HLS_msn=3&_HLS_part=1 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n";
  SimpleHead h;
  ASSERT_EQ(parse(text, h), HeadParse::simple);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/live/a/video/index.m3u8?_HLS_msn=3&_HLS_part=1");
  EXPECT_EQ(h.fields, "Host: x\r\nRange: bytes=0-1\r\n");
  EXPECT_EQ(h.version, 11u);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.size, text.size());
}

TEST(SimpleHead, PipelinedBytesAfterTheHeadAreLeftAlone) {
  std::string first = "GET /a HTTP/1.1\r\n\r\n";
  SimpleHead h;
  ASSERT_EQ(parse(first + "GET /b HTTP/1.1\r\n", h), HeadParse::simple);
  EXPECT_EQ(h.size, first.size());
  EXPECT_EQ(h.fields, "");
}

TEST(SimpleHead, KeepAliveFollowsTheVersionAndConnectionTokens) {
  SimpleHead h;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", h), HeadParse::simple);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", h), HeadParse::simple);
  EXPECT_EQ(h.version, 10u);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nconnection: foo, keep-alive\r\n\r\n", h), HeadParse::simple);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: keep-alive , close\r\n\r\n", h), HeadParse::simple);
  EXPECT_FALSE(h.keep_alive);
}

TEST(SimpleHead, IncompleteUntilTheEmptyLine) {
  SimpleHead h;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n", h), HeadParse::incomplete);
  EXPECT_EQ(parse("", h), HeadParse::incomplete);
}

// Everything that frames a body, or that a strict parser might read differently, goes to the full
// parser (which accepts or refuses it).
TEST(SimpleHead, AnythingUnusualIsLeftToTheFullParser) {
  const char* cases[] = {
      "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\ntransfer-encoding : chunked\r\n\r\n",  // space before the colon
      "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",                   // obs-fold
      "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n",                   // bare LF inside
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",                      // bare CR
      "GET http://host/ HTTP/1.1\r\n\r\n",                      // absolute form
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.2\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET /a b HTTP/1.1\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
      "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
  };
  for (const char* c : cases) {
    SimpleHead h;
    EXPECT_EQ(parse(c, h), HeadParse::other) << c;
  }
}

TEST(SimpleHead, NulInTheMiddleOfAValueIsNotSimple) {
  std::string text("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26);
  SimpleHead h;
  EXPECT_EQ(parse(text, h), HeadParse::other);
}

TEST(SimpleHead, ValuesMayCarryTabsAndObsText) {
  SimpleHead h;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nUser-Agent:\tx \xc3\xa9\r\n\r\n", h), HeadParse::simple);
}

}  // namespace
}  // namespace sf::http
