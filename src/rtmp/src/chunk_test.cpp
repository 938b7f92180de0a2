#include "sf/rtmp/chunk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

// Records the largest heap allocation while armed, to show that a hostile declared length is
// rejected before any block is allocated for it.
namespace {
std::atomic<bool> g_track_allocations{false};
std::atomic<std::size_t> g_largest_allocation{0};
}  // namespace

void* operator new(std::size_t size) {
  if (g_track_allocations.load(std::memory_order_relaxed)) {
    std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
    while (size > seen && !g_largest_allocation.compare_exchange_weak(seen, size)) {
    }
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that operator new above is malloc, and warns about each inlined pairing.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace sf::rtmp {
namespace {

using Wire = std::vector<std::byte>;

// Raw chunks, built field by field as an encoder would put them on the wire.
class Chunks {
 public:
  Chunks& basic(std::uint8_t fmt, std::uint32_t csid) {
    if (csid < 64) {
      u8((fmt << 6) | csid);
    } else if (csid < 320) {
      u8(fmt << 6);
      u8(csid - 64);
    } else {
      u8((fmt << 6) | 1);
      u8((csid - 64) & 0xFF);
      u8((csid - 64) >> 8);
    }
    return *this;
  }
  // Type 0 with the extended field when `ts` needs it.
  Chunks& fmt0(std::uint32_t csid, std::uint32_t ts, std::uint32_t length, std::uint8_t type, std::uint32_t msid) {
    basic(0, csid).u24(std::min<std::uint32_t>(ts, 0xFFFFFF)).u24(length).u8(type);
    for (int i = 0; i < 4; ++i) u8(msid >> (8 * i));
    if (ts >= 0xFFFFFF) u32(ts);
    return *this;
  }
  Chunks& fmt1(std::uint32_t csid, std::uint32_t delta, std::uint32_t length, std::uint8_t type) {
    basic(1, csid).u24(std::min<std::uint32_t>(delta, 0xFFFFFF)).u24(length).u8(type);
    if (delta >= 0xFFFFFF) u32(delta);
    return *this;
  }
  Chunks& fmt2(std::uint32_t csid, std::uint32_t delta) {
    basic(2, csid).u24(std::min<std::uint32_t>(delta, 0xFFFFFF));
    if (delta >= 0xFFFFFF) u32(delta);
    return *this;
  }
  Chunks& fmt3(std::uint32_t csid) { return basic(3, csid); }
  Chunks& payload(std::size_t n, std::uint8_t first = 0) {
    for (std::size_t i = 0; i < n; ++i) u8(first + i);
    return *this;
  }
  Chunks& u8(std::uint32_t v) {
    wire.push_back(static_cast<std::byte>(v & 0xFF));
    return *this;
  }
  Chunks& u24(std::uint32_t v) { return u8(v >> 16).u8(v >> 8).u8(v); }
  Chunks& u32(std::uint32_t v) { return u8(v >> 24).u24(v); }
  // A whole control message (type 1 or 2) on csid 2.
  Chunks& control(std::uint8_t type, std::uint32_t value) { return fmt0(2, 0, 4, type, 0).u32(value); }

  Wire wire;
};

struct Fed {
  std::vector<Message> messages;
  std::error_code error;
  std::size_t consumed = 0;  // of the whole input
};

// Feeds `in` in pieces ending at `cuts` the way a connection does: unconsumed bytes stay in the
// buffer and are offered again with the next read.
Fed feed_in_pieces(ByteView in, std::vector<std::size_t> cuts, ChunkLimits limits = {}) {
  ChunkReader reader(limits);
  Fed fed;
  Wire buffer;
  std::size_t from = 0;
  cuts.push_back(in.size());
  for (std::size_t cut : cuts) {
    buffer.insert(buffer.end(), in.begin() + from, in.begin() + cut);
    from = cut;
    auto used = reader.feed(buffer, fed.messages);
    if (!used) {
      fed.error = used.error();
      return fed;
    }
    buffer.erase(buffer.begin(), buffer.begin() + *used);
    fed.consumed += *used;
  }
  return fed;
}

Fed feed_once(ByteView in, ChunkLimits limits = {}) {
  return feed_in_pieces(in, {}, limits);
}

std::string describe(const Message& m) {
  std::string s = "csid=" + std::to_string(m.csid) + " type=" + std::to_string(m.type) +
                  " msid=" + std::to_string(m.stream_id) + " ts=" + std::to_string(m.timestamp) + " body=";
  for (std::byte b : m.body.view()) s += std::to_string(std::to_integer<int>(b)) + ",";
  return s;
}

std::vector<std::string> describe(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(describe(m));
  return out;
}

Wire from_hex(std::string_view hex) {
  Wire out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Wire counting_body(std::size_t n, std::uint8_t seed) {
  Wire body(n);
  for (std::size_t i = 0; i < n; ++i) body[i] = static_cast<std::byte>(seed + i * 7);
  return body;
}

// FFmpeg 5.1 publishing: connect (140 B, chunked at 128), Set Chunk Size 4096, releaseStream,
// FCPublish, createStream (type-1 headers), publish (msid 1), @setDataFrame, AVC sequence header.
const Wire kFfmpegPublish = from_hex(
    "0300000000008c1400000000020007636f6e6e656374003ff00000000000000300036170700200046c697665000474797065"
    "02000a6e6f6e707269766174650008666c617368566572020024464d4c452f332e302028636f6d70617469626c653b204c61"
    "766635392e32372e313030290005746355726c02001b72746d703a2f2f3132372e302e302e313a34c3363639392f6c697665"
    "000009020000000000040100000000000010004300000000001e1402000d72656c6561736553747265616d00400000000000"
    "000005020001784300000000001a1402000946435075626c6973680040080000000000000502000178430000000000191402"
    "000c63726561746553747265616d004010000000000000050800000000001f14010000000200077075626c69736800401400"
    "000000000005020001780200046c697665040000000000c8120100000002000d40736574446174614672616d6502000a6f6e"
    "4d65746144617461080000000800086475726174696f6e004000000000000000000577696474680040740000000000000006"
    "68656967687400406e000000000000000d766964656f646174617261746500000000000000000000096672616d6572617465"
    "004039000000000000000c766964656f636f646563696400401c0000000000000007656e636f64657202000d4c6176663539"
    "2e32372e313030000866696c6573697a6500000000000000000000000906000000000033090100000017000000000164000d"
    "ffe100196764000dacd94141fb011000000300100000030320f142996001000668ebe3cb22c0fdf8f800");

TEST(ChunkReader, ReadsFfmpegPublishSequence) {
  Fed fed = feed_once(kFfmpegPublish);
  ASSERT_FALSE(fed.error);
  EXPECT_EQ(fed.consumed, kFfmpegPublish.size());
  ASSERT_EQ(fed.messages.size(), 8u);
  EXPECT_EQ(fed.messages[0].type, kAmf0Command);
  EXPECT_EQ(fed.messages[0].body.size(), 140u);
  EXPECT_EQ(fed.messages[1].type, kSetChunkSize);
  EXPECT_EQ(fed.messages[5].stream_id, 1u);
  EXPECT_EQ(fed.messages[5].csid, 8u);
  EXPECT_EQ(fed.messages[6].type, kAmf0Data);
  EXPECT_EQ(fed.messages[6].body.size(), 200u);
  EXPECT_EQ(fed.messages[7].type, kVideo);
  EXPECT_EQ(fed.messages[7].body.size(), 51u);
}

TEST(ChunkReader, SplittingInputAnywhereGivesSameMessages) {
  const Fed whole = feed_once(kFfmpegPublish);
  ASSERT_FALSE(whole.error);
  for (std::size_t cut = 0; cut <= kFfmpegPublish.size(); ++cut) {
    Fed split = feed_in_pieces(kFfmpegPublish, {cut});
    ASSERT_FALSE(split.error) << cut;
    ASSERT_EQ(describe(split.messages), describe(whole.messages)) << cut;
  }
}

TEST(ChunkReader, ByteByByteInputGivesSameMessages) {
  ChunkWriter writer;
  Wire in;
  writer.write(5, kVideo, 1, 0xFFFFFF + 10, counting_body(300, 1), in);
  writer.set_chunk_size(60, in);
  writer.write(320, kAudio, 1, 20, counting_body(130, 2), in);
  writer.write(64, kAudio, 1, 0xFFFFFFFF, counting_body(61, 3), in);
  std::vector<std::size_t> cuts(in.size());
  for (std::size_t i = 0; i < cuts.size(); ++i) cuts[i] = i;
  const Fed whole = feed_once(in);
  ASSERT_FALSE(whole.error);
  ASSERT_EQ(whole.messages.size(), 4u);
  EXPECT_EQ(describe(feed_in_pieces(in, cuts).messages), describe(whole.messages));
}

TEST(ChunkReader, ConsumesOnlyWholeChunks) {
  Chunks c;
  c.fmt0(3, 0, 200, kVideo, 1).payload(128);
  const std::size_t first_chunk = c.wire.size();
  c.fmt3(3).payload(71);  // one byte short of the second chunk
  ChunkReader reader;
  std::vector<Message> out;
  EXPECT_EQ(reader.feed(c.wire, out).value(), first_chunk);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(reader.feed(ByteView(c.wire).first(1), out).value(), 0u);
}

TEST(ChunkReader, WaitsInsideMultiByteBasicHeader) {
  Chunks c;
  c.fmt0(400, 0, 1, kAudio, 1).payload(1);
  ChunkReader reader;
  std::vector<Message> out;
  EXPECT_EQ(reader.feed(ByteView(c.wire).first(2), out).value(), 0u);
  EXPECT_EQ(reader.feed(c.wire, out).value(), c.wire.size());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].csid, 400u);
}

// Writer output for one message, cut into its chunks (first: fmt 0 header, then fmt 3).
std::vector<Wire> chunks_of(const Wire& w, std::uint32_t csid, std::size_t body, std::uint32_t chunk_size,
                            bool extended) {
  const std::size_t basic = csid < 64 ? 1 : csid < 320 ? 2 : 3;
  const std::size_t ext = extended ? 4 : 0;
  std::vector<Wire> chunks;
  std::size_t pos = 0;
  std::size_t left = body;
  do {
    const std::size_t take = std::min<std::size_t>(left, chunk_size);
    const std::size_t size = basic + (pos == 0 ? 11 : 0) + ext + take;
    chunks.emplace_back(w.begin() + pos, w.begin() + pos + size);
    pos += size;
    left -= take;
  } while (left > 0);
  EXPECT_EQ(pos, w.size());
  return chunks;
}

struct Spec {
  std::uint32_t csid;
  std::uint8_t type;
  std::uint32_t msid;
  std::uint32_t ts;
  std::size_t size;
};

class ChunkRoundTrip : public testing::TestWithParam<std::uint32_t> {};

TEST_P(ChunkRoundTrip, InterleavedMessagesSurviveWriterAndReader) {
  const std::uint32_t cs = GetParam();
  ChunkWriter writer;
  Wire in;
  std::vector<std::string> expected;
  if (cs != 128) {
    writer.set_chunk_size(cs, in);
    Message m{kSetChunkSize, 0, 2, 0, Bytes::copy_of(ByteView(in).last(4))};
    expected.push_back(describe(m));
  }
  const std::vector<std::pair<Spec, Spec>> pairs = {
      {{3, kAmf0Command, 0, 0, 140}, {4, kAmf0Data, 1, 0, 0}},
      {{6, kVideo, 1, 40, cs + 1}, {7, kAudio, 1, 23, cs - 1}},
      {{64, kVideo, 1, 0xFFFFFF, 3 * cs + 5}, {319, kAudio, 1, 0xFFFFFE, cs}},
      {{320, kVideo, 1, 0xFFFFFFFF, 1}, {65599, kAudio, 7, 0x80000000, 2 * cs}},
  };
  std::uint8_t seed = 0;
  for (const auto& [a, b] : pairs) {
    std::vector<std::vector<Wire>> lists;
    std::vector<Message> messages;
    for (const Spec& s : {a, b}) {
      const Wire body = counting_body(std::min<std::size_t>(s.size, 200000), ++seed);
      Wire w;
      writer.write(s.csid, s.type, s.msid, s.ts, body, w);
      lists.push_back(chunks_of(w, s.csid, body.size(), cs, s.ts >= 0xFFFFFF));
      messages.push_back(Message{s.type, s.msid, s.csid, s.ts, Bytes::copy_of(body)});
    }
    // Round-robin A0 B0 A1 B1 ...: A completes first when it has no more chunks than B.
    for (std::size_t i = 0; i < std::max(lists[0].size(), lists[1].size()); ++i) {
      for (const auto& list : lists) {
        if (i < list.size()) in.insert(in.end(), list[i].begin(), list[i].end());
      }
    }
    const bool a_first = lists[0].size() <= lists[1].size();
    expected.push_back(describe(messages[a_first ? 0 : 1]));
    expected.push_back(describe(messages[a_first ? 1 : 0]));
  }
  Fed fed = feed_once(in);
  ASSERT_FALSE(fed.error) << fed.error.message();
  EXPECT_EQ(fed.consumed, in.size());
  EXPECT_EQ(describe(fed.messages), expected);
  Fed split = feed_in_pieces(in, {in.size() / 3, in.size() / 2, in.size() - 1});
  EXPECT_EQ(describe(split.messages), expected);
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, ChunkRoundTrip, testing::Values(1u, 2u, 7u, 127u, 128u, 129u, 4096u, 65536u));

TEST(ChunkReader, ExtendedTimestampRepeatedOnTypeThree) {
  Chunks c;
  c.fmt0(4, 0x01000000, 200, kVideo, 1).payload(128).fmt3(4).u32(0x01000000).payload(72, 128);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 1u);
  EXPECT_EQ(fed.messages[0].timestamp, 0x01000000u);
  EXPECT_EQ(fed.messages[0].body.view()[199], std::byte{199});
  EXPECT_EQ(fed.consumed, c.wire.size());
}

TEST(ChunkReader, ExtendedTimestampOmittedOnTypeThree) {
  Chunks c;
  c.fmt0(4, 0x01000000, 200, kVideo, 1).payload(128).fmt3(4).payload(72, 128);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 1u);
  EXPECT_EQ(fed.messages[0].timestamp, 0x01000000u);
  EXPECT_EQ(fed.messages[0].body.view()[128], std::byte{128});
  EXPECT_EQ(fed.messages[0].body.view()[199], std::byte{199});
}

TEST(ChunkReader, ExtendedDeltaOnTypeThreeStartingMessage) {
  Chunks c;
  c.fmt0(4, 0xFFFFFFF0, 4, kAudio, 1).payload(4);
  c.fmt1(4, 0x01000000, 4, kAudio).payload(4);
  c.fmt3(4).u32(0x01000000).payload(4);  // repeats the delta
  c.fmt3(4).payload(4, 9);               // omits it
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 4u);
  EXPECT_EQ(fed.messages[0].timestamp, 0xFFFFFFF0u);
  EXPECT_EQ(fed.messages[1].timestamp, 0x00FFFFF0u);  // wrapped past 2^32
  EXPECT_EQ(fed.messages[2].timestamp, 0x01FFFFF0u);
  EXPECT_EQ(fed.messages[3].timestamp, 0x02FFFFF0u);
  EXPECT_EQ(fed.messages[3].body.view()[0], std::byte{9});
}

TEST(ChunkReader, ShortTypeThreeChunkWaitsUntilExtendedFieldCanBeCompared) {
  Chunks c;
  c.fmt0(4, 0x01000000, 2, kAudio, 1).payload(2);
  const std::size_t first = c.wire.size();
  c.fmt3(4).payload(2);
  ChunkReader reader;
  std::vector<Message> out;
  EXPECT_EQ(reader.feed(c.wire, out).value(), first);
  c.fmt3(4).payload(2);
  EXPECT_EQ(reader.feed(ByteView(c.wire).subspan(first), out).value(), 3u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].timestamp, 0x02000000u);
}

TEST(ChunkReader, TypeOneAndTwoDeltasAccumulate) {
  Chunks c;
  c.fmt0(6, 1000, 3, kAudio, 1).payload(3);
  c.fmt1(6, 40, 5, kVideo).payload(5);
  c.fmt2(6, 20).payload(5);
  c.fmt3(6).payload(5);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 4u);
  EXPECT_EQ(fed.messages[0].timestamp, 1000u);
  EXPECT_EQ(fed.messages[1].timestamp, 1040u);
  EXPECT_EQ(fed.messages[1].type, kVideo);
  EXPECT_EQ(fed.messages[2].timestamp, 1060u);
  EXPECT_EQ(fed.messages[2].body.size(), 5u);
  EXPECT_EQ(fed.messages[3].timestamp, 1080u);
  EXPECT_EQ(fed.messages[3].stream_id, 1u);
}

TEST(ChunkReader, TypeThreeAfterTypeZeroAddsItsTimestampAgain) {
  Chunks c;
  c.fmt0(6, 100, 1, kAudio, 1).payload(1).fmt3(6).payload(1);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 2u);
  EXPECT_EQ(fed.messages[1].timestamp, 200u);
}

TEST(ChunkReader, ContinuationChunksKeepTheMessageTimestamp) {
  Chunks c;
  c.fmt0(6, 100, 129, kVideo, 1).payload(128).fmt3(6).payload(1).fmt3(6).payload(128).fmt3(6).payload(1);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 2u);
  EXPECT_EQ(fed.messages[0].timestamp, 100u);
  EXPECT_EQ(fed.messages[1].timestamp, 200u);
}

TEST(ChunkReader, MessageStreamIdIsLittleEndian) {
  Chunks c;
  c.basic(0, 5).u24(0).u24(1).u8(kVideo).u8(0x01).u8(0x02).u8(0).u8(0).payload(1);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 1u);
  EXPECT_EQ(fed.messages[0].stream_id, 0x0201u);
}

TEST(ChunkReader, ZeroLengthMessageHasEmptyBody) {
  Chunks c;
  c.fmt0(3, 5, 0, kAmf0Data, 1).fmt3(3);
  Fed fed = feed_once(c.wire);
  ASSERT_EQ(fed.messages.size(), 2u);
  EXPECT_TRUE(fed.messages[0].body.empty());
  EXPECT_EQ(fed.messages[1].timestamp, 10u);
}

TEST(ChunkReader, DeclaredLengthAboveLimitIsRejectedWithoutAllocating) {
  Chunks c;
  c.fmt0(4, 0, 0xFFFFFF, kVideo, 1);  // 16 MiB, the most a 24-bit length can declare
  g_largest_allocation = 0;
  g_track_allocations = true;
  Fed fed = feed_once(c.wire, ChunkLimits{.max_message_size = 1024 * 1024});
  g_track_allocations = false;
  EXPECT_EQ(fed.error, errc::message_too_large);
  EXPECT_LT(g_largest_allocation.load(), 64u * 1024);
}

TEST(ChunkReader, DeclaredLengthAtLimitIsAccepted) {
  Chunks c;
  c.fmt0(4, 0, 1000, kVideo, 1).payload(128);
  EXPECT_FALSE(feed_once(c.wire, ChunkLimits{.max_message_size = 1000}).error);
  EXPECT_EQ(feed_once(c.wire, ChunkLimits{.max_message_size = 999}).error, errc::message_too_large);
}

TEST(ChunkReader, PartialMessagesBeyondPendingLimitAreRejected) {
  Chunks c;
  c.fmt0(4, 0, 600, kVideo, 1).payload(128).fmt0(5, 0, 600, kVideo, 1).payload(128);
  EXPECT_EQ(feed_once(c.wire, ChunkLimits{.max_pending_bytes = 1000}).error, errc::limit_exceeded);
  EXPECT_FALSE(feed_once(c.wire, ChunkLimits{.max_pending_bytes = 1200}).error);
}

TEST(ChunkReader, CompletedMessagesReleasePendingBytes) {
  Chunks c;
  for (int i = 0; i < 20; ++i) {
    c.fmt0(4, 0, 300, kVideo, 1).payload(128).fmt3(4).payload(128).fmt3(4).payload(44);
  }
  EXPECT_FALSE(feed_once(c.wire, ChunkLimits{.max_pending_bytes = 300}).error);
}

TEST(ChunkReader, SetChunkSizeAppliesToTheNextChunk) {
  Chunks c;
  c.control(kSetChunkSize, 4096).fmt0(3, 0, 3000, kVideo, 1).payload(3000);
  Fed fed = feed_once(c.wire);
  ASSERT_FALSE(fed.error);
  ASSERT_EQ(fed.messages.size(), 2u);
  EXPECT_EQ(fed.messages[0].type, kSetChunkSize);
  EXPECT_EQ(fed.messages[1].body.size(), 3000u);
}

TEST(ChunkReader, SetChunkSizeZeroIsMalformed) {
  EXPECT_EQ(feed_once(Chunks().control(kSetChunkSize, 0).wire).error, errc::malformed);
}

TEST(ChunkReader, SetChunkSizeWithTopBitIsMalformed) {
  EXPECT_EQ(feed_once(Chunks().control(kSetChunkSize, 0x80000100).wire).error, errc::malformed);
}

TEST(ChunkReader, SetChunkSizeAboveLimitIsLimitExceeded) {
  EXPECT_EQ(feed_once(Chunks().control(kSetChunkSize, 0x7FFFFFFF).wire).error, errc::limit_exceeded);
  EXPECT_EQ(feed_once(Chunks().control(kSetChunkSize, 65537).wire, ChunkLimits{.max_chunk_size = 65536}).error,
            errc::limit_exceeded);
}

TEST(ChunkReader, ShortControlMessageIsMalformed) {
  Chunks c;
  c.fmt0(2, 0, 3, kSetChunkSize, 0).payload(3);
  EXPECT_EQ(feed_once(c.wire).error, errc::malformed);
}

TEST(ChunkReader, AbortDiscardsPartialMessage) {
  Chunks c;
  c.fmt0(4, 0, 200, kVideo, 1).payload(128);
  c.control(kAbort, 4);
  c.fmt0(4, 50, 2, kVideo, 1).payload(2, 7);
  Fed fed = feed_once(c.wire, ChunkLimits{.max_pending_bytes = 200});
  ASSERT_FALSE(fed.error) << fed.error.message();
  ASSERT_EQ(fed.messages.size(), 2u);
  EXPECT_EQ(fed.messages[0].type, kAbort);
  EXPECT_EQ(fed.messages[1].timestamp, 50u);
  EXPECT_EQ(fed.messages[1].body.view()[0], std::byte{7});
  // The aborted 200 bytes no longer count: another partial message of that size fits.
  Chunks more = c;
  more.fmt0(5, 0, 200, kVideo, 1).payload(128);
  EXPECT_FALSE(feed_once(more.wire, ChunkLimits{.max_pending_bytes = 200}).error);
}

TEST(ChunkReader, AbortOfUnknownStreamIsIgnored) {
  Fed fed = feed_once(Chunks().control(kAbort, 77).wire);
  EXPECT_FALSE(fed.error);
  EXPECT_EQ(fed.messages.size(), 1u);
}

TEST(ChunkReader, TooManyChunkStreamsIsLimitExceeded) {
  Chunks c;
  for (std::uint32_t csid = 3; csid < 8; ++csid) c.fmt0(csid, 0, 1, kAudio, 1).payload(1);
  EXPECT_FALSE(feed_once(c.wire, ChunkLimits{.max_chunk_streams = 5}).error);
  EXPECT_EQ(feed_once(c.wire, ChunkLimits{.max_chunk_streams = 4}).error, errc::limit_exceeded);
}

TEST(ChunkReader, TypeTwoOrThreeOnFreshChunkStreamIsMalformed) {
  EXPECT_EQ(feed_once(Chunks().fmt3(9).payload(4).wire).error, errc::malformed);
  EXPECT_EQ(feed_once(Chunks().fmt2(9, 0).payload(4).wire).error, errc::malformed);
}

TEST(ChunkReader, TypeOneOnFreshChunkStreamUsesStreamZero) {
  Fed fed = feed_once(Chunks().fmt1(9, 30, 1, kAmf0Command).payload(1).wire);
  ASSERT_EQ(fed.messages.size(), 1u);
  EXPECT_EQ(fed.messages[0].stream_id, 0u);
  EXPECT_EQ(fed.messages[0].timestamp, 30u);
}

TEST(ChunkReader, NewHeaderInsideMessageIsMalformed) {
  Chunks c;
  c.fmt0(4, 0, 200, kVideo, 1).payload(128).fmt1(4, 0, 72, kVideo).payload(72);
  EXPECT_EQ(feed_once(c.wire).error, errc::malformed);
}

TEST(ChunkReader, ErrorIsFinal) {
  ChunkReader reader;
  std::vector<Message> out;
  const Wire bad = Chunks().control(kSetChunkSize, 0).wire;
  EXPECT_EQ(reader.feed(bad, out).error(), errc::malformed);
  const Wire good = Chunks().fmt0(3, 0, 1, kAudio, 1).payload(1).wire;
  EXPECT_EQ(reader.feed(good, out).error(), errc::malformed);
}

TEST(ChunkReader, MovedReaderKeepsState) {
  Chunks c;
  c.fmt0(4, 0, 200, kVideo, 1).payload(128);
  ChunkReader reader;
  std::vector<Message> out;
  ASSERT_TRUE(reader.feed(c.wire, out).has_value());
  ChunkReader moved(std::move(reader));
  const Wire rest = Chunks().fmt3(4).payload(72).wire;
  EXPECT_EQ(moved.feed(rest, out).value(), rest.size());
  EXPECT_EQ(out.size(), 1u);
}

Wire bytes_of(std::initializer_list<int> v) {
  Wire out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

TEST(ChunkWriter, SplitsIntoTypeZeroThenTypeThreeChunks) {
  ChunkWriter writer;
  Wire out;
  writer.write(3, kAmf0Command, 0x01020304, 0x0A0B0C, counting_body(130, 0), out);
  ASSERT_EQ(out.size(), 12u + 128 + 1 + 2);
  EXPECT_EQ(Wire(out.begin(), out.begin() + 12),
            bytes_of({0x03, 0x0A, 0x0B, 0x0C, 0x00, 0x00, 130, 20, 0x04, 0x03, 0x02, 0x01}));
  EXPECT_EQ(out[12 + 128], std::byte{0xC3});
}

TEST(ChunkWriter, ExtendedTimestampRepeatsOnContinuations) {
  ChunkWriter writer;
  Wire out;
  writer.write(4, kVideo, 1, 0x12345678, counting_body(129, 0), out);
  ASSERT_EQ(out.size(), 16u + 128 + 5 + 1);
  EXPECT_EQ(Wire(out.begin() + 1, out.begin() + 4), bytes_of({0xFF, 0xFF, 0xFF}));
  EXPECT_EQ(Wire(out.begin() + 12, out.begin() + 16), bytes_of({0x12, 0x34, 0x56, 0x78}));
  EXPECT_EQ(Wire(out.begin() + 144, out.begin() + 149), bytes_of({0xC4, 0x12, 0x34, 0x56, 0x78}));
}

TEST(ChunkWriter, EncodesChunkStreamIdInOneToThreeBytes) {
  ChunkWriter writer;
  Wire out;
  writer.write(63, kAudio, 0, 0, {}, out);
  writer.write(64, kAudio, 0, 0, {}, out);
  writer.write(319, kAudio, 0, 0, {}, out);
  writer.write(320, kAudio, 0, 0, {}, out);
  writer.write(65599, kAudio, 0, 0, {}, out);
  ASSERT_EQ(out.size(), 12u + 13 + 13 + 14 + 14);
  EXPECT_EQ(out[0], std::byte{63});
  EXPECT_EQ(Wire(out.begin() + 12, out.begin() + 14), bytes_of({0x00, 0}));
  EXPECT_EQ(Wire(out.begin() + 25, out.begin() + 27), bytes_of({0x00, 255}));
  EXPECT_EQ(Wire(out.begin() + 38, out.begin() + 41), bytes_of({0x01, 0, 1}));
  EXPECT_EQ(Wire(out.begin() + 52, out.begin() + 55), bytes_of({0x01, 0xFF, 0xFF}));
}

TEST(ChunkWriter, SetChunkSizeWritesTypeOneOnChunkStreamTwo) {
  ChunkWriter writer;
  Wire out;
  writer.set_chunk_size(4096, out);
  EXPECT_EQ(out, bytes_of({0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x00, 0x00, 0x10, 0x00}));
  EXPECT_EQ(writer.chunk_size(), 4096u);
  out.clear();
  writer.write(3, kVideo, 1, 0, counting_body(4097, 0), out);
  EXPECT_EQ(out.size(), 12u + 4096 + 1 + 1);
}

// The gather plan must put exactly write()'s bytes on the wire, with the payload never copied.
TEST(ChunkWriter, PlanMatchesWriteWithoutCopyingPayload) {
  for (std::uint32_t cs : {1u, 5u, 128u, 4096u}) {
    ChunkWriter writer;
    Wire scratch;
    if (cs != 128) writer.set_chunk_size(cs, scratch);
    for (std::size_t prefix_size : {0u, 2u, 5u, 9u}) {
      for (std::size_t payload_size : {0u, 1u, 4u, 127u, 128u, 129u, 9000u}) {
        for (std::uint32_t ts : {0u, 40u, 0xFFFFFFu, 0x80000000u}) {
          const Wire prefix = counting_body(prefix_size, 1);
          const Wire payload = counting_body(payload_size, 7);
          Wire body = prefix;
          body.insert(body.end(), payload.begin(), payload.end());
          Wire expected;
          writer.write(6, kVideo, 1, ts, body, expected);
          ChunkPlan plan;
          plan.bytes.push_back(std::byte{0x55});  // earlier content stays untouched
          plan.pieces.push_back({-1, 0, 1});
          writer.plan(6, kVideo, 1, ts, prefix, payload, 3, plan);
          Wire got;
          std::size_t payload_bytes = 0;
          for (const auto& p : plan.pieces) {
            ASSERT_TRUE(p.source == -1 || p.source == 3);
            const Wire& from = p.source == -1 ? plan.bytes : payload;
            ASSERT_LE(p.offset + p.size, from.size());
            got.insert(got.end(), from.begin() + p.offset, from.begin() + p.offset + p.size);
            if (p.source == 3) payload_bytes += p.size;
          }
          expected.insert(expected.begin(), std::byte{0x55});
          EXPECT_EQ(got, expected) << "cs " << cs << " prefix " << prefix_size << " payload " << payload_size;
          EXPECT_EQ(payload_bytes, payload_size);
        }
      }
    }
  }
}

}  // namespace
}  // namespace sf::rtmp
