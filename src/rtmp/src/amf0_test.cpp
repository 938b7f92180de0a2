#include "sf/rtmp/amf0.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "amf0_compare.h"

namespace sf::rtmp::amf0 {
namespace {

std::vector<std::byte> raw(std::initializer_list<int> bytes) {
  std::vector<std::byte> out;
  for (int b : bytes) out.push_back(static_cast<std::byte>(b));
  return out;
}

std::vector<std::byte> encoded(const Value& v) {
  std::vector<std::byte> out;
  encode(v, out);
  return out;
}

Value ecma(Object o) {
  Value v(std::move(o));
  v.ecma = true;
  return v;
}

Value undefined() {
  Value v;
  v.v = Undefined{};
  return v;
}

Value date(double ms, std::int16_t tz) {
  Value v;
  v.v = Date{ms, tz};
  return v;
}

// The body of the `connect` command FFmpeg 5.1 (Lavf59.27.100) sent when publishing to
// rtmp://127.0.0.1:46699/live/x, captured from a real session.
const std::string kFfmpegConnect(
    "\x02\x00\x07\x63\x6f\x6e\x6e\x65\x63\x74\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\x03\x00\x03\x61\x70"
    "\x70\x02\x00\x04\x6c\x69\x76\x65\x00\x04\x74\x79\x70\x65\x02\x00\x0a\x6e\x6f\x6e\x70\x72\x69\x76"
    "\x61\x74\x65\x00\x08\x66\x6c\x61\x73\x68\x56\x65\x72\x02\x00\x24\x46\x4d\x4c\x45\x2f\x33\x2e\x30"
    "\x20\x28\x63\x6f\x6d\x70\x61\x74\x69\x62\x6c\x65\x3b\x20\x4c\x61\x76\x66\x35\x39\x2e\x32\x37\x2e"
    "\x31\x30\x30\x29\x00\x05\x74\x63\x55\x72\x6c\x02\x00\x1b\x72\x74\x6d\x70\x3a\x2f\x2f\x31\x32\x37"
    "\x2e\x30\x2e\x30\x2e\x31\x3a\x34\x36\x36\x39\x39\x2f\x6c\x69\x76\x65\x00\x00\x09",
    140);

std::vector<Value> samples() {
  return {
      Value(0.0),
      Value(-0.0),
      Value(3.25),
      Value(std::numeric_limits<double>::infinity()),
      Value(std::numeric_limits<double>::quiet_NaN()),
      Value(true),
      Value(false),
      Value(""),
      Value("NetStream.Publish.Start"),
      Value(std::string(65535, 'x')),
      Value(std::string(70000, 'y')),
      Value::null(),
      undefined(),
      date(1.7e12, -60),
      Value(Object{}),
      Value(Object{{"level", "status"}, {"code", "NetConnection.Connect.Success"}, {"objectEncoding", 0}}),
      ecma(Object{{"width", 1920}, {"height", 1080}, {"stereo", true}}),
      ecma(Object{}),
      Value(Array{}),
      Value(Array{1, "two", Value::null(), Array{Object{{"deep", Array{3}}}}}),
      Value(Object{{"", 5}}),  // an empty name that is not the end marker
  };
}

TEST(Amf0, EncodedValuesDecodeToThemselves) {
  for (const Value& v : samples()) {
    auto decoded = decode(encoded(v));
    ASSERT_TRUE(decoded.has_value());
    ASSERT_EQ(decoded->size(), 1u);
    EXPECT_TRUE(same_value((*decoded)[0], v)) << "marker " << static_cast<int>(encoded(v)[0]);
  }
}

TEST(Amf0, ConsecutiveValuesDecodeInOrder) {
  std::vector<std::byte> out;
  const auto all = samples();
  for (const Value& v : all) encode(v, out);
  auto decoded = decode(out);
  ASSERT_TRUE(decoded.has_value());
  ASSERT_EQ(decoded->size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_TRUE(same_value((*decoded)[i], all[i])) << i;
}

TEST(Amf0, StringsAboveSixteenBitsUseLongStringMarker) {
  EXPECT_EQ(encoded(Value(std::string(65535, 'a')))[0], std::byte{0x02});
  EXPECT_EQ(encoded(Value(std::string(65536, 'a')))[0], std::byte{0x0C});
}

TEST(Amf0, EncodesWireFormat) {
  EXPECT_EQ(encoded(Value(1)), raw({0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(encoded(Value(true)), raw({0x01, 0x01}));
  EXPECT_EQ(encoded(Value("ok")), raw({0x02, 0x00, 0x02, 'o', 'k'}));
  EXPECT_EQ(encoded(Value(Object{{"a", Value::null()}})), raw({0x03, 0x00, 0x01, 'a', 0x05, 0x00, 0x00, 0x09}));
  EXPECT_EQ(encoded(ecma(Object{})), raw({0x08, 0, 0, 0, 0, 0x00, 0x00, 0x09}));
  EXPECT_EQ(encoded(Value(Array{Value::null()})), raw({0x0A, 0, 0, 0, 1, 0x05}));
  EXPECT_EQ(encoded(undefined()), raw({0x06}));
  EXPECT_EQ(encoded(date(0, 1)), raw({0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01}));
}

TEST(Amf0, DecodesFfmpegConnectCommand) {
  auto values = decode(as_bytes(kFfmpegConnect));
  ASSERT_TRUE(values.has_value());
  ASSERT_EQ(values->size(), 3u);
  EXPECT_EQ(*(*values)[0].string(), "connect");
  EXPECT_EQ(*(*values)[1].number(), 1.0);
  const Value& cmd = (*values)[2];
  ASSERT_NE(cmd.object(), nullptr);
  EXPECT_FALSE(cmd.ecma);
  EXPECT_EQ(cmd.object()->size(), 4u);
  EXPECT_EQ(*cmd.get("app")->string(), "live");
  EXPECT_EQ(*cmd.get("type")->string(), "nonprivate");
  EXPECT_EQ(*cmd.get("flashVer")->string(), "FMLE/3.0 (compatible; Lavf59.27.100)");
  EXPECT_EQ(*cmd.get("tcUrl")->string(), "rtmp://127.0.0.1:46699/live");
}

TEST(Amf0, EcmaArrayCountIsOnlyAHint) {
  auto values = decode(raw({0x08, 0, 0, 0, 100, 0x00, 0x01, 'w', 0x01, 0x01, 0x00, 0x00, 0x09}));
  ASSERT_TRUE(values.has_value());
  const Value& v = (*values)[0];
  EXPECT_TRUE(v.ecma);
  ASSERT_EQ(v.object()->size(), 1u);
  EXPECT_EQ(std::get<bool>(v.get("w")->v), true);
}

TEST(Amf0, GetReturnsFirstMatchOrNull) {
  Value v(Object{{"k", 1}, {"k", 2}});
  EXPECT_EQ(*v.get("k")->number(), 1.0);
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_EQ(Value("k").get("k"), nullptr);
}

TEST(Amf0, EmptyInputHasNoValues) {
  auto values = decode({});
  ASSERT_TRUE(values.has_value());
  EXPECT_TRUE(values->empty());
}

TEST(Amf0, DeepObjectNestingIsLimitExceeded) {
  std::vector<std::byte> in;
  for (int i = 0; i < 10000; ++i) {
    const auto level = i == 0 ? raw({0x03}) : raw({0x00, 0x01, 'a', 0x03});
    in.insert(in.end(), level.begin(), level.end());
  }
  EXPECT_EQ(decode(in).error(), errc::limit_exceeded);
}

TEST(Amf0, DeepArrayNestingIsLimitExceeded) {
  std::vector<std::byte> in;
  for (int i = 0; i < 10000; ++i) {
    const auto level = raw({0x0A, 0, 0, 0, 1});
    in.insert(in.end(), level.begin(), level.end());
  }
  in.push_back(std::byte{0x05});
  EXPECT_EQ(decode(in).error(), errc::limit_exceeded);
}

TEST(Amf0, NestingUpToMaxDepthDecodes) {
  Value v = Value::null();
  for (int i = 0; i < 16; ++i) v = Value(Array{v});
  EXPECT_TRUE(decode(encoded(v), Limits{.max_depth = 16}).has_value());
  v = Value(Array{v});
  EXPECT_EQ(decode(encoded(v), Limits{.max_depth = 16}).error(), errc::limit_exceeded);
}

TEST(Amf0, StrictArrayCountAboveItemLimitIsRejectedBeforeReserving) {
  auto in = raw({0x0A, 0xFF, 0xFF, 0xFF, 0xFF});
  in.resize(in.size() + 5000, std::byte{0x05});
  EXPECT_EQ(decode(in).error(), errc::limit_exceeded);
}

TEST(Amf0, StrictArrayCountAboveRemainingBytesIsTruncated) {
  auto in = raw({0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05});
  EXPECT_EQ(decode(in, Limits{.max_items = std::numeric_limits<std::size_t>::max()}).error(), errc::truncated);
}

TEST(Amf0, TooManyValuesIsLimitExceeded) {
  std::vector<std::byte> in(5000, std::byte{0x05});
  EXPECT_EQ(decode(in).error(), errc::limit_exceeded);
  EXPECT_TRUE(decode(in, Limits{.max_items = 5000}).has_value());
}

TEST(Amf0, LongStringLengthAboveRemainingIsTruncated) {
  EXPECT_EQ(decode(raw({0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 'a'})).error(), errc::truncated);
}

TEST(Amf0, Amf3SwitchIsUnsupported) {
  EXPECT_EQ(decode(raw({0x11, 0x01})).error(), errc::unsupported);
}

TEST(Amf0, ReferenceIsUnsupported) {
  EXPECT_EQ(decode(raw({0x07, 0x00, 0x00})).error(), errc::unsupported);
}

TEST(Amf0, ObjectEndOutsideObjectIsMalformed) {
  EXPECT_EQ(decode(raw({0x09})).error(), errc::malformed);
}

TEST(Amf0, UnknownMarkerIsMalformed) {
  EXPECT_EQ(decode(raw({0x12})).error(), errc::malformed);
}

TEST(Amf0, EveryProperPrefixOfAValueIsTruncated) {
  auto connect = decode(as_bytes(kFfmpegConnect));
  ASSERT_TRUE(connect.has_value());
  std::vector<Value> values = samples();
  values.push_back((*connect)[2]);
  for (const Value& v : values) {
    const auto whole = encoded(v);
    for (std::size_t cut = 1; cut < whole.size(); ++cut) {
      auto r = decode(ByteView(whole).first(cut));
      ASSERT_FALSE(r.has_value()) << "cut " << cut;
      ASSERT_EQ(r.error(), errc::truncated) << "cut " << cut;
    }
  }
}

}  // namespace
}  // namespace sf::rtmp::amf0
