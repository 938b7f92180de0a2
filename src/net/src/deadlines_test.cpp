#include "sf/net/deadlines.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace sf::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Probe final : Watched {
  void expired() override {
    fired = Clock::now();
    ++count;
  }
  Clock::time_point fired{};
  int count = 0;
};

TEST(Deadlines, ExpiresWithinATickOfTheDeadlineThenRunReturns) {
  boost::asio::io_context ctx;
  Probe p;
  auto& d = Deadlines::of(ctx.get_executor());
  auto t0 = Clock::now();
  d.watch(p, t0 + 120ms);
  ctx.run_for(2s);  // returns as soon as nothing is watched
  EXPECT_EQ(p.count, 1);
  EXPECT_GE(p.fired - t0, 120ms);
  EXPECT_LE(p.fired - t0, 120ms + 2 * kDeadlineTick + 300ms);  // generous: a shared machine
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_EQ(d.watched(), 0u);
}

TEST(Deadlines, UnwatchedOrMovedDeadlinesDoNotFire) {
  boost::asio::io_context ctx;
  Probe a, b, c;
  auto& d = Deadlines::of(ctx.get_executor());
  auto t0 = Clock::now();
  d.watch(a, t0 + 60ms);
  d.watch(b, t0 + 60ms);
  d.watch(c, t0 + 60ms);
  d.unwatch(b);
  d.watch(c, t0 + 400ms);  // moved later
  boost::asio::steady_timer check(ctx, t0 + 250ms);
  int c_at_250 = -1;
  check.async_wait([&](auto) { c_at_250 = c.count; });
  ctx.run_for(2s);
  EXPECT_EQ(a.count, 1);
  EXPECT_EQ(b.count, 0);
  EXPECT_EQ(c_at_250, 0);
  EXPECT_EQ(c.count, 1);
}

TEST(Deadlines, DestroyedWatchedObjectLeavesTheList) {
  boost::asio::io_context ctx;
  auto& d = Deadlines::of(ctx.get_executor());
  {
    Probe gone;
    d.watch(gone, Clock::now() + 50ms);
    EXPECT_EQ(d.watched(), 1u);
  }
  EXPECT_EQ(d.watched(), 0u);
  ctx.run_for(300ms);
}

}  // namespace
}  // namespace sf::net
