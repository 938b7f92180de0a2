#include "av.h"

#include <gtest/gtest.h>

namespace sf::transcode {
namespace {

Bytes bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return Bytes::adopt(std::move(s));
}

TEST(AnnexB, SplitsOnThreeAndFourByteStartCodes) {
  auto in = bytes({0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5});
  auto nals = split_annexb(in.view());
  ASSERT_EQ(nals.size(), 3u);
  EXPECT_EQ(nals[0].size(), 3u);
  EXPECT_EQ(nals[1].size(), 2u);
  EXPECT_EQ(nals[2].size(), 3u);
}

TEST(AnnexB, LengthPrefixedWithoutParameterSets) {
  auto in = bytes({0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 4, 5});
  auto out = annexb_to_length_prefixed(in.view());
  ASSERT_EQ(out.size(), 7u);
  auto v = out.view();
  EXPECT_EQ(std::to_integer<int>(v[3]), 3);
  EXPECT_EQ(std::to_integer<int>(v[4]), 0x65);
}

TEST(AnnexB, MakesAvccFromSpsAndPps) {
  auto in = bytes({0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80});
  auto avcc = make_avcc(in.view());
  ASSERT_TRUE(avcc);
  auto v = avcc->view();
  EXPECT_EQ(std::to_integer<int>(v[0]), 1);
  EXPECT_EQ(std::to_integer<int>(v[1]), 0x64);
  EXPECT_EQ(std::to_integer<int>(v[3]), 0x1f);
  EXPECT_EQ(std::to_integer<int>(v[4]), 0xff);
  EXPECT_EQ(std::to_integer<int>(v[5]), 0xe1);
  EXPECT_EQ(v.size(), 6u + 2 + 5 + 1 + 2 + 4);
}

TEST(AnnexB, AvccNeedsSpsAndPps) {
  EXPECT_FALSE(make_avcc(bytes({0, 0, 1, 0x67, 0x64, 0, 0x1f}).view()));
  EXPECT_FALSE(make_avcc(ByteView{}));
}

}  // namespace
}  // namespace sf::transcode
