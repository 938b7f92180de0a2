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

// A stand-in for an object whose chunked body is still arriving (nothing received yet).
std::shared_ptr<Entry> open_entry(std::shared_ptr<http::ChunkedBody> source, Clock::time_point now) {
  auto e = std::make_shared<Entry>();
  e->source = std::move(source);
  e->stored = now;
  e->expires = now + 1h;
  return e;
}

// What the edge does: the body tells the cache each piece it publishes.
void count_in(Cache& c, const std::string& key, const std::shared_ptr<http::ChunkedBody>& body, const Entry* e) {
  body->on_append([&c, key, e](std::size_t n) { c.grow(key, e, n); });
}

Bytes piece(std::size_t n) {
  return Bytes::copy_of(as_bytes(std::string(n, 'y')));
}

TEST(Cache, ChunkedEntryCountsItsBytesAsTheyArriveAndTheCompleteObjectThenReplacesThem) {
  Cache c(1 << 20);
  auto now = Clock::now();
  c.store("/seg0", entry(1000, 1h, now));
  auto body = std::make_shared<http::ChunkedBody>();
  auto open = open_entry(body, now);
  c.store("/seg1", open);
  count_in(c, "/seg1", body, open.get());
  EXPECT_EQ(c.bytes(), 1000u);
  body->append(piece(3000));
  EXPECT_EQ(c.bytes(), 4000u);
  body->append(piece(2000));
  EXPECT_EQ(c.bytes(), 6000u);
  body->end();
  c.store("/seg1", entry(5000, 1h, now));  // the complete object, as the fetch stores it
  EXPECT_EQ(c.bytes(), 6000u);
  body->append(piece(100));  // nothing after the end is counted
  EXPECT_EQ(c.bytes(), 6000u);
  // A late grow() for the replaced stand-in changes nothing either.
  c.grow("/seg1", open.get(), 100);
  EXPECT_EQ(c.bytes(), 6000u);
}

TEST(Cache, BrokenOffChunkedEntryReleasesTheBytesItHad) {
  Cache c(1 << 20);
  auto now = Clock::now();
  c.store("/seg0", entry(1000, 1h, now));
  auto body = std::make_shared<http::ChunkedBody>();
  auto open = open_entry(body, now);
  c.store("/seg1", open);
  count_in(c, "/seg1", body, open.get());
  body->append(piece(3000));
  EXPECT_EQ(c.bytes(), 4000u);
  body->fail();
  c.erase("/seg1", open.get());
  EXPECT_EQ(c.bytes(), 1000u);
  EXPECT_EQ(c.find("/seg1", now), nullptr);
  // Unfound by erase (nothing there): released by the lookup that finds it unservable instead.
  auto body2 = std::make_shared<http::ChunkedBody>();
  auto open2 = open_entry(body2, now);
  c.store("/seg2", open2);
  count_in(c, "/seg2", body2, open2.get());
  body2->append(piece(500));
  EXPECT_EQ(c.bytes(), 1500u);
  body2->fail();
  std::thread([&] { EXPECT_EQ(c.find("/seg2", now), nullptr); }).join();
  EXPECT_EQ(c.bytes(), 1000u);
  c.erase("/seg0", open.get());  // not the entry /seg0 holds: kept
  EXPECT_EQ(c.bytes(), 1000u);
}

// Many objects arriving at once, none complete: the cache stays within its bound by evicting the
// oldest, and an evicted entry's body still takes every piece for the viewers written from it.
TEST(Cache, ManyOpenChunkedEntriesStayWithinTheBound) {
  Cache c(10000);
  auto now = Clock::now();
  std::vector<std::shared_ptr<http::ChunkedBody>> bodies;
  std::vector<std::shared_ptr<Entry>> entries;
  for (int i = 0; i < 8; ++i) {
    bodies.push_back(std::make_shared<http::ChunkedBody>());
    entries.push_back(open_entry(bodies.back(), now));
    auto key = "/seg" + std::to_string(i);
    c.store(key, entries.back());
    count_in(c, key, bodies.back(), entries.back().get());
  }
  for (int round = 0; round < 5; ++round)
    for (auto& b : bodies) {
      b->append(piece(400));
      EXPECT_LE(c.bytes(), 10000u);
    }
  // 8 x 2000 bytes arrived, the bound is 10000: the oldest went first.
  EXPECT_EQ(c.evictions(), 3u);
  EXPECT_EQ(c.bytes(), 10000u);
  EXPECT_EQ(c.find("/seg0", now), nullptr);
  EXPECT_EQ(c.find("/seg7", now), entries[7]);
  for (auto& b : bodies) {
    EXPECT_EQ(b->size(), 2000u);
    EXPECT_FALSE(b->failed());
  }
  // One that grows past a quarter of the bound is no longer kept (looked up from another thread:
  // this one's front map still holds what it found).
  bodies[7]->append(piece(1000));
  std::thread([&] { EXPECT_EQ(c.find("/seg7", now), nullptr); }).join();
  EXPECT_EQ(c.bytes(), 8000u);
}

}  // namespace
}  // namespace sf::edge
