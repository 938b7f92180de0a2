#include "sf/http/shared_body.h"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <cstring>
#include <string_view>
#include <vector>

namespace sf::http {
namespace {

namespace asio = boost::asio;

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

void produce(SharedBody& body, std::string_view s) {
  std::memcpy(body.write_position(), s.data(), s.size());
  body.advance(s.size());
}

std::string_view text(const SharedBody& body) {
  return {reinterpret_cast<const char*>(body.data()), body.available()};
}

TEST(SharedBody, FailureWakesWaitersAtOnceUnlessHeld) {
  asio::io_context ctx;
  SharedBody plain(10);
  produce(plain, "abcd");
  int woken = 0;
  plain.when_beyond(4, ctx.get_executor(), [&] { ++woken; });
  plain.fail();
  ctx.run();
  EXPECT_EQ(woken, 1);
  EXPECT_TRUE(plain.failed());

  ctx.restart();
  SharedBody held(10);
  held.hold_failure();
  produce(held, "abcd");
  woken = 0;
  held.when_beyond(4, ctx.get_executor(), [&] { ++woken; });
  held.fail();
  ctx.run();
  EXPECT_EQ(woken, 0) << "a held failure must leave the waiters waiting";
  EXPECT_FALSE(held.failed());
  EXPECT_TRUE(held.broken());

  ctx.restart();
  held.fail_now();
  ctx.run();
  EXPECT_EQ(woken, 1);
  EXPECT_TRUE(held.failed());
}

TEST(SharedBody, BrokenBodyIsFinishedWithExactlyWhatIsLeft) {
  asio::io_context ctx;
  SharedBody body(10);
  body.hold_failure();
  produce(body, "abcd");
  body.fail();
  int woken = 0;
  body.when_beyond(4, ctx.get_executor(), [&] { ++woken; });
  EXPECT_FALSE(body.finish_with(bytes_of("efghijk"))) << "one byte too many";
  EXPECT_FALSE(body.finish_with(bytes_of("efghi"))) << "one byte short";
  EXPECT_EQ(body.available(), 4u);
  EXPECT_TRUE(body.finish_with(bytes_of("efghij")));
  ctx.run();
  EXPECT_EQ(woken, 1);
  EXPECT_TRUE(body.complete());
  EXPECT_FALSE(body.broken());
  EXPECT_FALSE(body.failed());
  EXPECT_EQ(text(body), "abcdefghij");
}

TEST(SharedBody, FailedBodyCannotBeFinished) {
  SharedBody body(4);
  produce(body, "ab");
  body.fail();
  EXPECT_FALSE(body.finish_with(bytes_of("cd")));
  EXPECT_EQ(body.available(), 2u);
}

}  // namespace
}  // namespace sf::http
