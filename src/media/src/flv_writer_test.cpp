#include <gtest/gtest.h>

#include <vector>

#include "sf/core/byte_reader.h"
#include "sf/media/flv.h"
#include "test_util.h"

namespace sf::media {
namespace {

using testing::concat;
using testing::hex;
using testing::hex_vector;

constexpr std::string_view kAvcc720p =
    "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800";
constexpr std::string_view kHvcc1080p =
    "01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003007895"
    "9809a10001002a420101016000000300900000030000030078a003c08010e596566924caf01680800000030080000"
    "00f04a2000100074401c172b46240";
constexpr std::string_view kAv1c = "81010c000a0b0000000cc4ff6700be0010";

struct Recorder : FlvDemuxer::Output {
  void on_track(const TrackConfig& track) override { tracks.push_back(track); }
  void on_frame(MediaFrame&& frame) override { frames.push_back(std::move(frame)); }
  std::vector<TrackConfig> tracks;
  std::vector<MediaFrame> frames;
};

struct Collector {
  FlvWriter::Sink sink() {
    return [this](ByteView piece) {
      pieces.emplace_back(piece.begin(), piece.end());
      pointers.push_back(piece.data());
      all.insert(all.end(), piece.begin(), piece.end());
    };
  }
  std::vector<std::vector<std::byte>> pieces;
  std::vector<const std::byte*> pointers;
  std::vector<std::byte> all;
};

struct Tag {
  std::uint8_t type = 0;
  std::int64_t timestamp_ms = 0;
  Bytes body;
};

// SPECS 4: the FLV file layout, read back strictly.
std::vector<Tag> read_flv(const std::vector<std::byte>& file) {
  const Bytes data = Bytes::copy_of(file);
  ByteReader r(data);
  EXPECT_EQ(as_chars(*r.bytes(3)), "FLV");
  r.skip(2).value();
  EXPECT_EQ(*r.u32(), 9u);
  EXPECT_EQ(*r.u32(), 0u);
  std::vector<Tag> tags;
  while (!r.empty()) {
    Tag t;
    t.type = *r.u8();
    const std::uint32_t size = *r.u24();
    const std::uint32_t low = *r.u24();
    t.timestamp_ms = std::int64_t{*r.u8()} << 24 | low;
    EXPECT_EQ(*r.u24(), 0u);
    t.body = data.share(r.position(), size);
    r.skip(size).value();
    EXPECT_EQ(*r.u32(), 11 + size);
    tags.push_back(std::move(t));
  }
  return tags;
}

Recorder demux(const std::vector<Tag>& tags) {
  FlvDemuxer demuxer;
  Recorder out;
  for (const Tag& t : tags) {
    auto r = t.type == 9 ? demuxer.video(t.timestamp_ms, t.body, out) : demuxer.audio(t.timestamp_ms, t.body, out);
    EXPECT_TRUE(r) << r.error().message() << " " << demuxer.detail();
  }
  return out;
}

std::vector<std::byte> write_all(const Recorder& source) {
  Collector c;
  FlvWriter writer(c.sink());
  writer.write_header(true, true);
  for (const TrackConfig& t : source.tracks) writer.write_track(t, 0);
  for (const MediaFrame& f : source.frames) writer.write_frame(f);
  return c.all;
}

void expect_same(const Recorder& a, const Recorder& b) {
  ASSERT_EQ(a.tracks.size(), b.tracks.size());
  for (std::size_t i = 0; i < a.tracks.size(); ++i) {
    EXPECT_EQ(a.tracks[i].track_id, b.tracks[i].track_id);
    EXPECT_EQ(a.tracks[i].codec, b.tracks[i].codec);
    EXPECT_EQ(a.tracks[i].timescale, b.tracks[i].timescale);
    EXPECT_TRUE(std::ranges::equal(a.tracks[i].record.view(), b.tracks[i].record.view()));
  }
  ASSERT_EQ(a.frames.size(), b.frames.size());
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    const MediaFrame& x = a.frames[i];
    const MediaFrame& y = b.frames[i];
    EXPECT_EQ(x.track_id, y.track_id) << i;
    EXPECT_EQ(x.codec, y.codec) << i;
    EXPECT_EQ(x.dts, y.dts) << i;
    EXPECT_EQ(x.pts, y.pts) << i;
    EXPECT_EQ(x.keyframe, y.keyframe) << i;
    EXPECT_EQ(x.config_version, y.config_version) << i;
    EXPECT_TRUE(std::ranges::equal(x.data.view(), y.data.view())) << i;
  }
}

TEST(FlvWriter, HeaderHasSignatureFlagsAndPreviousTagSizeZero) {
  Collector c;
  FlvWriter writer(c.sink());
  writer.write_header(true, true);
  EXPECT_EQ(c.all, hex_vector("464c5601 05 00000009 00000000"));
  Collector video_only;
  FlvWriter(video_only.sink()).write_header(true, false);
  EXPECT_EQ(video_only.all[4], std::byte{0x01});
}

TEST(FlvWriter, FrameIsWrittenAsHeaderPiecePayloadPieceAndTagSize) {
  Collector c;
  FlvWriter writer(c.sink());
  MediaFrame f;
  f.type = MediaType::video;
  f.codec = Codec::h264;
  f.dts = std::int64_t{0x01234567} * 90;  // needs TimestampExtended
  f.pts = f.dts + 40 * 90;
  f.keyframe = true;
  f.data = hex("00000002 6588");
  writer.write_frame(f);
  ASSERT_EQ(c.pieces.size(), 3u);
  EXPECT_EQ(c.pieces[0], hex_vector("09 00000b 234567 01 000000  17 01 000028"));
  EXPECT_EQ(c.pointers[1], f.data.data());  // the payload is handed over, not copied
  EXPECT_EQ(c.pieces[2], hex_vector("00000016"));
}

TEST(FlvWriter, HevcUsesExHeaderAndCodedFramesXWhenCompositionIsZero) {
  Collector c;
  FlvWriter writer(c.sink());
  MediaFrame f;
  f.type = MediaType::video;
  f.codec = Codec::hevc;
  f.dts = f.pts = 90;
  f.data = hex("00000001 02");
  writer.write_frame(f);
  f.pts = 90 * 34;
  f.keyframe = true;
  writer.write_frame(f);
  ASSERT_EQ(c.pieces.size(), 6u);
  EXPECT_EQ(c.pieces[0], hex_vector("09 00000a 000001 00 000000  a3 68766331"));
  EXPECT_EQ(c.pieces[3], hex_vector("09 00000d 000001 00 000000  91 68766331 000021"));
}

TEST(FlvWriter, AudioTimestampsUseTheTrackTimescale) {
  Collector c;
  FlvWriter writer(c.sink());
  TrackConfig track;
  track.type = MediaType::audio;
  track.codec = Codec::aac;
  track.timescale = 48000;
  track.record = hex("1190");
  writer.write_track(track, 0);
  MediaFrame f;
  f.type = MediaType::audio;
  f.codec = Codec::aac;
  f.dts = f.pts = 48000 * 3;
  f.data = hex("2110");
  writer.write_frame(f);
  ASSERT_EQ(c.pieces.size(), 6u);
  EXPECT_EQ(c.pieces[0], hex_vector("08 000004 000000 00 000000  af 00"));
  EXPECT_EQ(c.pieces[3], hex_vector("08 000004 000bb8 00 000000  af 01"));
}

TEST(FlvWriterRoundTrip, H264AndAacFramesComeBackIdentical) {
  FlvDemuxer demuxer;
  Recorder source;
  ASSERT_TRUE(demuxer.video(0, concat({hex("1700000000"), hex(kAvcc720p)}), source));
  ASSERT_TRUE(demuxer.audio(0, hex("af00 121056e500"), source));
  ASSERT_TRUE(demuxer.video(0, hex("1701000043 00000003 658884"), source));
  ASSERT_TRUE(demuxer.audio(23, hex("af01 21100460"), source));
  ASSERT_TRUE(demuxer.video(33, hex("2701ffffdf 00000001 41"), source));  // negative offset
  ASSERT_TRUE(demuxer.audio(46, hex("af01 2110"), source));
  ASSERT_TRUE(demuxer.video(0x1000000 + 5, hex("2701000000 00000001 41"), source));
  ASSERT_TRUE(demuxer.audio(0x1000000 + 7, hex("af01 2110"), source));
  ASSERT_EQ(source.frames.size(), 6u);

  expect_same(source, demux(read_flv(write_all(source))));
}

TEST(FlvWriterRoundTrip, HevcFramesComeBackIdentical) {
  FlvDemuxer demuxer;
  Recorder source;
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 68766331"), hex(kHvcc1080p)}), source));
  ASSERT_TRUE(demuxer.video(0, hex("91 68766331 000042 00000003 260101"), source));
  ASSERT_TRUE(demuxer.video(33, hex("a3 68766331 00000002 0201"), source));
  ASSERT_TRUE(demuxer.video(66, hex("a1 68766331 ffffdf 00000002 0201"), source));

  expect_same(source, demux(read_flv(write_all(source))));
}

TEST(FlvWriterRoundTrip, Av1FramesComeBackIdentical) {
  FlvDemuxer demuxer;
  Recorder source;
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 61763031"), hex(kAv1c)}), source));
  ASSERT_TRUE(demuxer.video(0, hex("91 61763031 12000a0b00"), source));
  ASSERT_TRUE(demuxer.video(40, hex("a1 61763031 1200 3205aabbccddee"), source));

  expect_same(source, demux(read_flv(write_all(source))));
}

TEST(FlvWriterRoundTrip, EnhancedRtmpAudioComesBackIdentical) {
  for (std::string_view sequence : {
           "90 4f707573 4f70757348656164 0102 3801 80bb0000 0000 00",                               // Opus
           "90 664c6143 12001200 000305 000514 0ac442f00000ac44 b48e1dd0c193fdd40c05f288d60157a3",  // FLAC
           "",                                                                                      // AC-3
       }) {
    FlvDemuxer demuxer;
    Recorder source;
    if (!sequence.empty()) {
      ASSERT_TRUE(demuxer.audio(0, hex(sequence), source));
      const std::string fourcc = std::string(sequence.substr(3, 8));
      ASSERT_TRUE(demuxer.audio(20, concat({hex("91" + fourcc), hex("fcfffe")}), source));
      ASSERT_TRUE(demuxer.audio(40, concat({hex("91" + fourcc), hex("fcfffd")}), source));
    } else {
      ASSERT_TRUE(demuxer.audio(0, hex("91 61632d33 0b77fe95144043e1 00"), source));
      ASSERT_TRUE(demuxer.audio(32, hex("91 61632d33 0b77fe95144043e1 01"), source));
    }
    ASSERT_EQ(source.tracks.size(), 1u);
    ASSERT_EQ(source.frames.size(), 2u);
    expect_same(source, demux(read_flv(write_all(source))));
  }
}

TEST(FlvWriterRoundTrip, Mp3IsWrittenAsLegacyMp3) {
  FlvDemuxer demuxer;
  Recorder source;
  ASSERT_TRUE(demuxer.audio(0, hex("91 2e6d7033 fffb9464 0000"), source));  // E-RTMP .mp3 in
  ASSERT_TRUE(demuxer.audio(24, hex("2f fffb9464 0001"), source));
  const auto tags = read_flv(write_all(source));
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(std::to_integer<int>(tags[0].body.view()[0]), 0x2f);
  expect_same(source, demux(tags));
}

}  // namespace
}  // namespace sf::media
