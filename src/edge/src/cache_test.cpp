#include "cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

namespace sf::edge {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const Entry> entry(std::size_t size, Clock::duration ttl, Clock::time_point now = Clock::now()) {
  auto e = std::make_shared<Entry>();
  e->body = Bytes::copy_of(as_bytes(std::string(size, 'x')));
  e->stored = now;
  e->expires = now + ttl;
  return e;
}

TEST(Cache, ServesFreshEntriesAndNeverExpiredOnes) {
  Cache c(1 << 20);
  auto now = Clock::now();
  c.store("/a", entry(10, 1s, now));
  EXPECT_NE(c.find("/a", now), nullptr);
  EXPECT_EQ(c.find("/a", now + 2s), nullptr);
  EXPECT_EQ(c.find("/missing", now), nullptr);
}

TEST(Cache, EvictsOldestFirstWithinTheByteBound) {
  Cache c(1000);
  auto now = Clock::now();
  c.store("/s1", entry(200, 1h, now));
  c.store("/s2", entry(200, 1h, now));
  c.store("/s3", entry(200, 1h, now));
  c.store("/s4", entry(200, 1h, now));
  c.store("/s5", entry(200, 1h, now));  // 1000 bytes: still fits
  EXPECT_LE(c.bytes(), 1000u);
  c.store("/s6", entry(200, 1h, now));  // evicts /s1, the oldest
  EXPECT_LE(c.bytes(), 1000u);
  EXPECT_EQ(c.evictions(), 1u);
  // Another thread has no front entries, so it sees exactly what the shared store holds.
  std::thread([&] {
    EXPECT_EQ(c.find("/s1", now), nullptr);
    EXPECT_NE(c.find("/s6", now), nullptr);
    EXPECT_NE(c.find("/s2", now), nullptr);
  }).join();
}

TEST(Cache, RefusesAnObjectLargerThanAQuarterOfTheCache) {
  Cache c(1000);
  c.store("/big", entry(300, 1h));
  EXPECT_EQ(c.bytes(), 0u);
}

TEST(Cache, ReplacingAKeyKeepsTheByteCountTrue) {
  Cache c(10000);
  auto now = Clock::now();
  for (int i = 0; i < 100; ++i) c.store("/playlist", entry(100 + i, 1s, now));
  EXPECT_EQ(c.bytes(), 199u);
}

// A thread that hit the streamed stand-in (body still arriving) gets the final entry once the
// body is complete and the final entry stored, not the stand-in from its front map.
TEST(Cache, FrontGivesUpAStreamedEntryOnceItsBodyIsComplete) {
  Cache c(1 << 20);
  auto now = Clock::now();
  auto body = std::make_shared<http::SharedBody>(100);
  auto streamed = std::make_shared<Entry>();
  streamed->stream = body;
  streamed->body = body->bytes();
  streamed->stored = now;
  streamed->expires = now + 1h;
  c.store("/part", streamed);
  EXPECT_EQ(c.find("/part", now), streamed);  // now in this thread's front
  std::memset(body->write_position(), 'x', 100);
  body->advance(100);
  auto final_entry = entry(100, 1h, now);
  c.store("/part", final_entry);
  EXPECT_EQ(c.find("/part", now), final_entry);
  EXPECT_EQ(c.find("/part", now), final_entry);
}

}  // namespace
}  // namespace sf::edge
