#include "av.h"

#include <gtest/gtest.h>

#include <random>

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

// The byte-by-byte scan split_annexb replaced: the reference it must agree with.
std::vector<ByteView> split_annexb_reference(ByteView in) {
  std::vector<ByteView> out;
  auto b = [&](std::size_t i) { return std::to_integer<unsigned>(in[i]); };
  std::size_t i = 0, start = std::size_t(-1);
  while (i + 2 < in.size()) {
    if (b(i) == 0 && b(i + 1) == 0 && b(i + 2) == 1) {
      if (start != std::size_t(-1)) {
        std::size_t end = i;
        while (end > start && b(end - 1) == 0) --end;
        if (end > start) out.push_back(in.subspan(start, end - start));
      }
      i += 3;
      start = i;
    } else {
      ++i;
    }
  }
  if (start != std::size_t(-1) && start < in.size()) out.push_back(in.subspan(start));
  return out;
}

TEST(AnnexB, SplitAgreesWithByteByByteScan) {
  // Bytes drawn mostly from {0, 1} so start codes, runs of zeros and lone 1s are frequent.
  std::mt19937 rng(7);
  for (int n = 0; n < 2000; ++n) {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) {
      unsigned r = rng() % 8;
      c = static_cast<char>(r < 4 ? 0 : r < 7 ? 1 : 0x65);
    }
    auto in = Bytes::adopt(std::move(s));
    auto got = split_annexb(in.view());
    auto want = split_annexb_reference(in.view());
    ASSERT_EQ(got.size(), want.size()) << "case " << n;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].data(), want[i].data()) << "case " << n << " nal " << i;
      EXPECT_EQ(got[i].size(), want[i].size()) << "case " << n << " nal " << i;
    }
  }
}

TEST(AnnexB, SplitKeepsTrailingZerosOutAndIgnoresLoneOnes) {
  auto in = bytes({1, 0, 1, 0, 0, 1, 0x65, 1, 0, 1, 0, 0, 0, 0, 1, 0x41, 0, 0, 1});
  auto nals = split_annexb(in.view());
  ASSERT_EQ(nals.size(), 2u);
  EXPECT_EQ(nals[0].size(), 4u);  // 65 01 00 01: the zeros before the next 00 00 01 are not part of it
  EXPECT_EQ(nals[1].size(), 1u);  // 41; the final start code has nothing after it
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
