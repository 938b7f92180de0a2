#include "registry.h"

#include <gtest/gtest.h>

namespace sf::ingest {
namespace {

std::shared_ptr<LiveStream> stream(std::string name, std::string* stopped_with = nullptr) {
  auto s = std::make_shared<LiveStream>(PublishInfo{.stream = std::move(name)});
  if (stopped_with) s->stop = [stopped_with](std::string_view r) { *stopped_with = r; };
  return s;
}

TEST(Registry, RefusesSecondPublisherWithoutTakeover) {
  Registry reg(10);
  ASSERT_TRUE(reg.claim(stream("a"), false));
  auto second = reg.claim(stream("a"), false);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), errc::conflict);
}

TEST(Registry, TakeoverStopsTheLivePublisher) {
  Registry reg(10);
  std::string reason;
  auto first = stream("a", &reason);
  ASSERT_TRUE(reg.claim(first, false));
  auto second = stream("a");
  ASSERT_TRUE(reg.claim(second, true));
  EXPECT_EQ(reason, "taken_over");
  // The first releasing late must not remove the second.
  reg.release(*first);
  ASSERT_EQ(reg.live().size(), 1u);
  EXPECT_EQ(reg.live()[0], second);
}

TEST(Registry, ExportsAtMostMaxLabelsStreams) {
  Registry reg(2);
  for (auto n : {"a", "b", "c"}) ASSERT_TRUE(reg.claim(stream(n), false));
  for (auto& fam : reg.Collect()) {
    if (fam.name == "streamflex_ingest_streams_live")
      EXPECT_EQ(fam.metric.at(0).gauge.value, 3);
    else
      EXPECT_LE(fam.metric.size(), 2u) << fam.name;
  }
}

}  // namespace
}  // namespace sf::ingest
