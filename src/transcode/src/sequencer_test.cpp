#include "sequencer.h"

#include <gtest/gtest.h>

#include <thread>

namespace sf::transcode {
namespace {

SeqItem frame(std::uint32_t track, std::int64_t dts, std::uint64_t area) {
  SeqItem i;
  i.area = area;
  i.media.track_id = track;
  i.media.dts = dts;
  return i;
}

TEST(Sequencer, EmitsSlotsInInputOrderWhateverOrderTheyFinish) {
  std::vector<std::int64_t> out;
  Sequencer seq([&](SeqItem& i) { out.push_back(i.media.dts); });
  auto a = seq.open(1, 0), b = seq.open(1, 1), c = seq.open(1, 2);
  seq.add(c, frame(1, 3, 1));
  seq.done(c);
  seq.add(b, frame(1, 2, 1));
  seq.done(b);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(seq.depth(), 3u);
  seq.add(a, frame(1, 1, 1));
  seq.done(a);
  EXPECT_EQ(out, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(seq.depth(), 0u);
}

TEST(Sequencer, SmallestRungFirstAndTracksBeforeFrames) {
  std::vector<std::pair<int, std::uint32_t>> out;
  Sequencer seq([&](SeqItem& i) {
    out.push_back({int(i.kind), i.kind == SeqItem::track ? i.track_config.track_id : i.media.track_id});
  });
  auto s = seq.open(1, 0);
  seq.add_pending(s, 2);
  seq.add(s, frame(10, 0, 1920 * 1080));
  SeqItem t;
  t.kind = SeqItem::track;
  t.area = 1920 * 1080;
  t.track_config.track_id = 10;
  seq.add(s, t);
  seq.done(s);
  seq.add(s, frame(14, 0, 284 * 160));
  t.area = 284 * 160;
  t.track_config.track_id = 14;
  seq.add(s, t);
  seq.done(s);
  EXPECT_TRUE(out.empty());
  seq.done(s);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], (std::pair<int, std::uint32_t>{SeqItem::track, 14}));
  EXPECT_EQ(out[1], (std::pair<int, std::uint32_t>{SeqItem::frame, 14}));
  EXPECT_EQ(out[2], (std::pair<int, std::uint32_t>{SeqItem::track, 10}));
  EXPECT_EQ(out[3], (std::pair<int, std::uint32_t>{SeqItem::frame, 10}));
}

TEST(Sequencer, FrontTimeIsTheOldestPendingMediaTime) {
  Sequencer seq([](SeqItem&) {});
  EXPECT_LT(seq.front_time(), 0);
  auto a = seq.open(1, 5.0);
  seq.open(1, 6.0);
  EXPECT_DOUBLE_EQ(seq.front_time(), 5.0);
  seq.done(a);
  EXPECT_DOUBLE_EQ(seq.front_time(), 6.0);
}

TEST(Sequencer, WaitBelowBlocksUntilSlotsDrain) {
  Sequencer seq([](SeqItem&) {});
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(seq.open(1, i));
  seq.open(0, -1);  // untimed slots (audio, tracks) do not count
  std::atomic<bool> passed{false};
  std::thread waiter([&] {
    seq.wait_below(2);
    passed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(passed);
  for (auto id : ids) seq.done(id);
  waiter.join();
  EXPECT_TRUE(passed);
}

TEST(Sequencer, ManyThreadsKeepOrder) {
  std::vector<std::int64_t> out;
  Sequencer seq([&](SeqItem& i) { out.push_back(i.media.dts); });
  constexpr int kSlots = 2000;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < kSlots; ++i) ids.push_back(seq.open(1, i));
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      for (int i = w; i < kSlots; i += 4) {
        seq.add(ids[i], frame(1, i, 1));
        seq.done(ids[i]);
      }
    });
  for (auto& t : workers) t.join();
  ASSERT_EQ(out.size(), std::size_t(kSlots));
  for (int i = 0; i < kSlots; ++i) ASSERT_EQ(out[i], i);
}

}  // namespace
}  // namespace sf::transcode
