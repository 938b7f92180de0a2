#include "range.h"

#include <gtest/gtest.h>

namespace sf::http {
namespace {

TEST(ParseRange, ClosedRange) {
  auto r = parse_range("bytes=10-19", 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 10u);
  EXPECT_EQ(r->length, 10u);
}

TEST(ParseRange, OpenAndHugeLastPosAreClampedToTheEnd) {
  EXPECT_EQ(parse_range("bytes=90-", 100)->length, 10u);
  EXPECT_EQ(parse_range("bytes=0-9007199254740991", 100)->length, 100u);
}

TEST(ParseRange, SuffixRange) {
  auto r = parse_range("bytes=-30", 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 70u);
  EXPECT_EQ(r->length, 30u);
}

TEST(ParseRange, RefusesUnsatisfiableAndMalformed) {
  EXPECT_FALSE(parse_range("bytes=100-", 100));
  EXPECT_FALSE(parse_range("bytes=20-10", 100));
  EXPECT_FALSE(parse_range("bytes=a-b", 100));
  EXPECT_FALSE(parse_range("items=0-1", 100));
  EXPECT_FALSE(parse_range("bytes=0-1,5-6", 100));
}

}  // namespace
}  // namespace sf::http
