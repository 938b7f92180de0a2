#include <gtest/gtest.h>

#include <vector>

#include "sf/media/flv.h"
#include "test_util.h"

namespace sf::media {
namespace {

using testing::concat;
using testing::hex;

// Tag bodies as ffmpeg 5.1 (libx264 1280x720 High, native AAC 44.1 kHz stereo) wrote them to FLV.
constexpr std::string_view kAvcSequenceHeader =
    "1700000000"
    "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800";
constexpr std::string_view kAvcc1080p =
    "014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300781e30632c01000568ebe3cb20";
constexpr std::string_view kAacSequenceHeader = "af00121056e500";
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

bool inside(const Bytes& slice, const Bytes& body) {
  return slice.data() >= body.data() && slice.data() + slice.size() <= body.data() + body.size();
}

class FlvDemuxerTest : public ::testing::Test {
 protected:
  Result<void> video(std::int64_t ts, std::string_view body_hex) { return demuxer.video(ts, hex(body_hex), out); }
  Result<void> audio(std::int64_t ts, std::string_view body_hex) { return demuxer.audio(ts, hex(body_hex), out); }

  FlvDemuxer demuxer;
  Recorder out;
};

TEST_F(FlvDemuxerTest, AvcSequenceHeaderBecomesVideoTrackSharingTheBody) {
  const Bytes body = hex(kAvcSequenceHeader);
  ASSERT_TRUE(demuxer.video(0, body, out));
  ASSERT_EQ(out.tracks.size(), 1u);
  const TrackConfig& t = out.tracks[0];
  EXPECT_EQ(t.track_id, 1u);
  EXPECT_EQ(t.type, MediaType::video);
  EXPECT_EQ(t.codec, Codec::h264);
  EXPECT_EQ(t.timescale, 90000u);
  EXPECT_EQ(t.version, 1u);
  ASSERT_TRUE(t.video);
  EXPECT_EQ(t.video->width, 1280u);
  EXPECT_EQ(t.video->codec_string, "avc1.64001f");
  EXPECT_EQ(t.record.data(), body.data() + 5);
  EXPECT_EQ(t.record.size(), body.size() - 5);
  ASSERT_NE(demuxer.video_track(), nullptr);
  EXPECT_EQ(demuxer.audio_track(), nullptr);
}

TEST_F(FlvDemuxerTest, AvcFrameTimesAreNinetyKhzWithCompositionOffset) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  const Bytes body = hex("2701000043 0000000441e00102");
  ASSERT_TRUE(demuxer.video(1000, body, out));
  ASSERT_EQ(out.frames.size(), 1u);
  const MediaFrame& f = out.frames[0];
  EXPECT_EQ(f.track_id, 1u);
  EXPECT_EQ(f.codec, Codec::h264);
  EXPECT_EQ(f.dts, 90000);
  EXPECT_EQ(f.pts, (1000 + 67) * 90);
  EXPECT_FALSE(f.keyframe);
  EXPECT_EQ(f.config_version, 1u);
  EXPECT_EQ(f.data.data(), body.data() + 5);
  EXPECT_EQ(f.data.size(), 8u);
}

TEST_F(FlvDemuxerTest, FrameDataSharesTheMessageBlockInsteadOfCopying) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  const Bytes body = hex("1701000000 0000000465888400");
  ASSERT_TRUE(demuxer.video(0, body, out));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_TRUE(inside(out.frames[0].data, body));
  EXPECT_EQ(body.use_count(), 2);
}

TEST_F(FlvDemuxerTest, KeyFrameTypeOneMarksKeyframe) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  ASSERT_TRUE(video(0, "1701000000 00000001 65"));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_TRUE(out.frames[0].keyframe);
}

TEST_F(FlvDemuxerTest, NegativeCompositionTimeGivesPtsBeforeDts) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  ASSERT_TRUE(video(100, "2701ffffdf 00000001 41"));  // -33 ms
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].pts, 67 * 90);
}

TEST_F(FlvDemuxerTest, FramesBeforeSequenceHeaderAreSkippedWithoutError) {
  ASSERT_TRUE(video(0, "1701000000 00000001 65"));
  ASSERT_TRUE(audio(0, "af01 2110"));
  EXPECT_TRUE(out.frames.empty());
  EXPECT_EQ(demuxer.skipped_frames(), 2u);
}

TEST_F(FlvDemuxerTest, IdenticalSequenceHeaderDoesNotRepeatTrack) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  ASSERT_TRUE(video(40, kAvcSequenceHeader));
  EXPECT_EQ(out.tracks.size(), 1u);
}

TEST_F(FlvDemuxerTest, ChangedSequenceHeaderBumpsVersionForLaterFrames) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  ASSERT_TRUE(demuxer.video(40, concat({hex("1700000000"), hex(kAvcc1080p)}), out));
  ASSERT_TRUE(video(80, "1701000000 00000001 65"));
  ASSERT_EQ(out.tracks.size(), 2u);
  EXPECT_EQ(out.tracks[1].version, 2u);
  EXPECT_EQ(out.tracks[1].video->height, 1080u);
  EXPECT_EQ(out.frames.at(0).config_version, 2u);
}

TEST_F(FlvDemuxerTest, EndOfSequenceAndCommandFramesProduceNothing) {
  ASSERT_TRUE(video(0, kAvcSequenceHeader));
  ASSERT_TRUE(video(10, "1702000000"));
  ASSERT_TRUE(video(10, "5700"));
  EXPECT_TRUE(out.frames.empty());
  EXPECT_EQ(demuxer.skipped_frames(), 1u);
}

TEST_F(FlvDemuxerTest, InvalidSequenceHeaderIsAnError) {
  EXPECT_EQ(video(0, "1700000000 02640028ffe100").error(), errc::malformed);
  EXPECT_EQ(video(0, "1700000000 01640028ff").error(), errc::truncated);
  EXPECT_EQ(out.tracks.size(), 0u);
}

TEST_F(FlvDemuxerTest, TruncatedBodiesAreErrors) {
  EXPECT_EQ(video(0, "").error(), errc::truncated);
  EXPECT_EQ(video(0, "1701").error(), errc::truncated);
  EXPECT_EQ(video(0, "9100").error(), errc::truncated);  // ex-header without full FourCC
  EXPECT_EQ(audio(0, "").error(), errc::truncated);
  EXPECT_EQ(audio(0, "af").error(), errc::truncated);
}

TEST_F(FlvDemuxerTest, UnsupportedLegacyVideoCodecNamesIt) {
  EXPECT_EQ(video(0, "2200").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video codec id 2 (Sorenson H.263)");
  EXPECT_EQ(video(0, "1400").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video codec id 4 (On2 VP6)");
}

TEST_F(FlvDemuxerTest, UnsupportedVideoFourCcNamesIt) {
  EXPECT_EQ(video(0, "90 76703038 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video FourCC vp08");
  EXPECT_EQ(video(0, "90 76703039 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video FourCC vp09");
}

TEST_F(FlvDemuxerTest, LegacyCodecId12IsAcceptedAsHevc) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("1c00000000"), hex(kHvcc1080p)}), out));
  ASSERT_TRUE(video(33, "2c01000021 00000001 02"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::hevc);
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].pts, 66 * 90);
}

TEST_F(FlvDemuxerTest, ExHeaderHevcSequenceStartCodedFramesAndCodedFramesX) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 68766331"), hex(kHvcc1080p)}), out));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::hevc);
  EXPECT_EQ(out.tracks[0].video->codec_string, "hvc1.1.6.L120.90");

  const Bytes coded = hex("91 68766331 000021 00000003 260101");
  ASSERT_TRUE(demuxer.video(100, coded, out));
  const Bytes coded_x = hex("a3 68766331 00000003 020101");
  ASSERT_TRUE(demuxer.video(133, coded_x, out));
  ASSERT_EQ(out.frames.size(), 2u);
  EXPECT_TRUE(out.frames[0].keyframe);
  EXPECT_EQ(out.frames[0].pts, 133 * 90);
  EXPECT_EQ(out.frames[0].data.data(), coded.data() + 8);
  EXPECT_FALSE(out.frames[1].keyframe);
  EXPECT_EQ(out.frames[1].pts, out.frames[1].dts);
  EXPECT_EQ(out.frames[1].data.data(), coded_x.data() + 5);
}

TEST_F(FlvDemuxerTest, ExHeaderAvc1IsH264) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 61766331"), hex(kAvcc1080p)}), out));
  ASSERT_TRUE(video(0, "91 61766331 000000 00000001 65"));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].codec, Codec::h264);
}

TEST_F(FlvDemuxerTest, ExHeaderAv1CodedFramesHaveNoCompositionField) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 61763031"), hex(kAv1c)}), out));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].video->width, 640u);
  const Bytes body = hex("91 61763031 12000a0b00");
  ASSERT_TRUE(demuxer.video(50, body, out));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].pts, 50 * 90);
  EXPECT_EQ(out.frames[0].data.data(), body.data() + 5);
}

TEST_F(FlvDemuxerTest, ModExIsSkippedAndTheNextPacketTypeApplied) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 61766331"), hex(kAvcc1080p)}), out));
  // ModEx: size 3 (u8 2 + 1), TimestampOffsetNano data, then modExType 0 | CodedFramesX.
  const Bytes body = hex("97 02 0f4240 03 61766331 00000001 65");
  ASSERT_TRUE(demuxer.video(10, body, out));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].data.data(), body.data() + 10);
}

TEST_F(FlvDemuxerTest, ModExWithSixteenBitSize) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("90 61766331"), hex(kAvcc1080p)}), out));
  std::vector<std::byte> v = testing::hex_vector("97 ff 0101");  // 0x0101 + 1 = 258 bytes follow
  v.resize(v.size() + 258, std::byte{0x55});
  for (auto b : testing::hex_vector("03 61766331 00000001 65")) v.push_back(b);
  ASSERT_TRUE(demuxer.video(10, Bytes::copy_of(v), out));
  EXPECT_EQ(out.frames.size(), 1u);
}

TEST_F(FlvDemuxerTest, MultitrackOneTrackWithTrackZeroIsAccepted) {
  ASSERT_TRUE(demuxer.video(0, concat({hex("96 00 61766331 00"), hex(kAvcc1080p)}), out));
  ASSERT_TRUE(video(0, "96 03 61766331 00 00000001 65"));
  EXPECT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.frames.size(), 1u);
}

TEST_F(FlvDemuxerTest, OtherMultitrackLayoutsAreUnsupported) {
  EXPECT_EQ(video(0, "96 13 61766331 00 000005 00000001").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video multitrack type 1");
  EXPECT_EQ(video(0, "96 03 61766331 01 00000001 65").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "video multitrack track id 1");
}

TEST_F(FlvDemuxerTest, MetadataAndExCommandFramesProduceNothing) {
  ASSERT_TRUE(video(0, "94 68766331 0200"));  // Metadata, AMF body not read
  ASSERT_TRUE(video(0, "d1 00"));             // FrameType 5 command: no FourCC follows
  EXPECT_TRUE(out.tracks.empty());
  EXPECT_EQ(demuxer.skipped_frames(), 1u);
}

TEST_F(FlvDemuxerTest, AacSequenceHeaderSetsSampleRateTimescale) {
  const Bytes body = hex(kAacSequenceHeader);
  ASSERT_TRUE(demuxer.audio(0, body, out));
  ASSERT_EQ(out.tracks.size(), 1u);
  const TrackConfig& t = out.tracks[0];
  EXPECT_EQ(t.track_id, 2u);
  EXPECT_EQ(t.type, MediaType::audio);
  EXPECT_EQ(t.codec, Codec::aac);
  EXPECT_EQ(t.timescale, 44100u);
  ASSERT_TRUE(t.audio);
  EXPECT_EQ(t.audio->codec_string, "mp4a.40.2");
  EXPECT_EQ(t.record.data(), body.data() + 2);
  EXPECT_EQ(demuxer.audio_track()->timescale, 44100u);
}

TEST_F(FlvDemuxerTest, AacFrameTimesAreInSampleRateTicks) {
  ASSERT_TRUE(audio(0, kAacSequenceHeader));
  const Bytes body = hex("af01 211004608c1c");
  ASSERT_TRUE(demuxer.audio(1023, body, out));
  ASSERT_EQ(out.frames.size(), 1u);
  const MediaFrame& f = out.frames[0];
  EXPECT_EQ(f.track_id, 2u);
  EXPECT_EQ(f.dts, 1023 * 44100 / 1000);
  EXPECT_EQ(f.pts, f.dts);
  EXPECT_TRUE(f.keyframe);
  EXPECT_EQ(f.data.data(), body.data() + 2);
}

TEST_F(FlvDemuxerTest, AacTimesUse64BitArithmetic) {
  ASSERT_TRUE(audio(0, "af00 1190"));
  ASSERT_TRUE(audio(100'000'000, "af01 21"));  // 100000 s * 48000 overflows 32 bits
  EXPECT_EQ(out.frames.at(0).dts, 4'800'000'000);
}

TEST_F(FlvDemuxerTest, ExHeaderMp4aIsAac) {
  ASSERT_TRUE(audio(0, "90 6d703461 1190"));
  ASSERT_TRUE(audio(20, "91 6d703461 2110"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].timescale, 48000u);
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].dts, 960);
}

TEST_F(FlvDemuxerTest, Mp3FramesAnnounceTheirTrackFromTheFrameHeader) {
  // Legacy MP3 (format 2, "44 kHz" in the tag though the frame says 48 kHz): MPEG-1 Layer III,
  // 128 kbit/s, 48 kHz, joint stereo.
  ASSERT_TRUE(audio(0, "2f fffb9464 0000"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::mp3);
  EXPECT_EQ(out.tracks[0].type, MediaType::audio);
  EXPECT_EQ(out.tracks[0].timescale, 48000u);
  ASSERT_TRUE(out.tracks[0].audio);
  EXPECT_EQ(out.tracks[0].audio->channels, 2u);
  EXPECT_EQ(out.tracks[0].audio->samples_per_frame, 1152u);
  ASSERT_TRUE(audio(24, "2f fffb9464 0000"));
  EXPECT_EQ(out.tracks.size(), 1u);  // the same configuration: no new track
  ASSERT_EQ(out.frames.size(), 2u);
  EXPECT_EQ(out.frames[1].codec, Codec::mp3);
  EXPECT_EQ(out.frames[1].dts, 24 * 48);
  EXPECT_EQ(out.frames[1].data.size(), 6u);
  // MPEG-2 Layer III at 22.05 kHz, mono: a new configuration.
  ASSERT_TRUE(audio(48, "2e fff390c4 0000"));
  ASSERT_EQ(out.tracks.size(), 2u);
  EXPECT_EQ(out.tracks[1].timescale, 22050u);
  EXPECT_EQ(out.tracks[1].audio->channels, 1u);
  EXPECT_EQ(out.tracks[1].audio->samples_per_frame, 576u);
  // Not an MPEG audio header: skipped, not fatal.
  ASSERT_TRUE(audio(72, "2f 00112233"));
  EXPECT_EQ(out.frames.size(), 3u);
}

// E-RTMP v2 audio: 0x9N is ExHeader with AudioPacketType N, then the FourCC.
TEST_F(FlvDemuxerTest, OpusIdHeaderConfiguresTheTrackAndTheCommentHeaderIsIgnored) {
  const Bytes head = hex("90 4f707573 4f70757348656164 01 02 3801 80bb0000 0000 00");
  ASSERT_TRUE(demuxer.audio(0, head, out));
  ASSERT_EQ(out.tracks.size(), 1u);
  const TrackConfig& t = out.tracks[0];
  EXPECT_EQ(t.codec, Codec::opus);
  EXPECT_EQ(t.type, MediaType::audio);
  EXPECT_EQ(t.timescale, 48000u);
  ASSERT_TRUE(t.audio);
  EXPECT_EQ(t.audio->channels, 2);
  EXPECT_EQ(t.record.data(), head.data() + 5);  // the ID header, shared, for the decoder
  EXPECT_EQ(t.record.size(), 19u);
  ASSERT_TRUE(audio(0, "90 4f707573 4f70757354616773 0d000000 4c61766635392e32372e313030 00000000"));
  ASSERT_TRUE(audio(0, "90 4f707573 4f70757348656164 01 02 3801 80bb0000 0000 00"));
  EXPECT_EQ(out.tracks.size(), 1u);  // the comment header and the same ID header again: no new track
  const Bytes packet = hex("91 4f707573 fcfffe");
  ASSERT_TRUE(demuxer.audio(20, packet, out));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].codec, Codec::opus);
  EXPECT_EQ(out.frames[0].dts, 960);
  EXPECT_EQ(out.frames[0].data.data(), packet.data() + 5);
  EXPECT_EQ(out.frames[0].data.size(), 3u);
}

TEST_F(FlvDemuxerTest, OpusFramesBeforeTheirHeaderAreSkippedAndABadHeaderIsMalformed) {
  ASSERT_TRUE(audio(0, "91 4f707573 fcfffe"));
  EXPECT_TRUE(out.frames.empty());
  EXPECT_EQ(demuxer.skipped_frames(), 1u);
  EXPECT_EQ(audio(0, "90 4f707573 4f70757348656164 10 02").error(), errc::truncated);
  EXPECT_EQ(demuxer.detail(), "invalid opus sequence header");
}

TEST_F(FlvDemuxerTest, Ac3SyncFramesAnnounceTheirTrack) {
  // No sequence header: the first sync frame (48 kHz stereo, 192 kbit/s) says it all.
  ASSERT_TRUE(audio(0, "91 61632d33 0b77fe95144043e1 0000"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::ac3);
  EXPECT_EQ(out.tracks[0].timescale, 48000u);
  EXPECT_EQ(out.tracks[0].audio->channels, 2);
  EXPECT_EQ(out.tracks[0].audio->samples_per_frame, 1536);
  EXPECT_EQ(out.tracks[0].record.size(), 0u);
  ASSERT_TRUE(audio(32, "91 61632d33 0b77fe95144043e1 0000"));
  EXPECT_EQ(out.tracks.size(), 1u);
  ASSERT_EQ(out.frames.size(), 2u);
  EXPECT_EQ(out.frames[1].dts, 32 * 48);
  EXPECT_EQ(out.frames[1].data.size(), 10u);
  // A different configuration (44.1 kHz mono) is a new track version.
  ASSERT_TRUE(audio(64, "91 61632d33 0b771ef84c402f84"));
  ASSERT_EQ(out.tracks.size(), 2u);
  EXPECT_EQ(out.tracks[1].timescale, 44100u);
  EXPECT_EQ(out.tracks[1].version, 2u);
  // An E-AC-3 frame under ac-3, and bytes with no sync word, are skipped, not fatal.
  ASSERT_TRUE(audio(96, "91 61632d33 0b7701ff3f87c000"));
  ASSERT_TRUE(audio(96, "91 61632d33 00112233445566"));
  EXPECT_EQ(out.frames.size(), 3u);
  EXPECT_EQ(demuxer.skipped_frames(), 2u);
  // A sequence header configures nothing for AC-3.
  ASSERT_TRUE(audio(96, "90 61632d33"));
  EXPECT_EQ(out.tracks.size(), 2u);
}

TEST_F(FlvDemuxerTest, Eac3SyncFramesAnnounceTheirTrack) {
  ASSERT_TRUE(audio(0, "91 65632d33 0b7701ff3f87c000"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::eac3);
  EXPECT_EQ(out.tracks[0].audio->channels, 6);
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].codec, Codec::eac3);
}

TEST_F(FlvDemuxerTest, FlacStreamInfoBecomesTheRecordWithOrWithoutItsMarker) {
  const Bytes marked =
      hex("90 664c6143 664c6143 00000022 12001200 000305 000514 0ac442f00000ac44 b48e1dd0c193fdd40c05f288d60157a3");
  ASSERT_TRUE(demuxer.audio(0, marked, out));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::flac);
  EXPECT_EQ(out.tracks[0].timescale, 44100u);
  EXPECT_EQ(out.tracks[0].record.data(), marked.data() + 13);
  EXPECT_EQ(out.tracks[0].record.size(), 34u);
  // The bare STREAMINFO is the same configuration.
  ASSERT_TRUE(audio(0, "90 664c6143 12001200 000305 000514 0ac442f00000ac44 b48e1dd0c193fdd40c05f288d60157a3"));
  EXPECT_EQ(out.tracks.size(), 1u);
  ASSERT_TRUE(audio(1000, "91 664c6143 fff8c9180000"));
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].dts, 44100);
  EXPECT_EQ(audio(0, "90 664c6143 664c6143 04000022").error(), errc::malformed);
  EXPECT_EQ(demuxer.detail(), "invalid flac sequence header");
}

TEST_F(FlvDemuxerTest, NewAudioFourCcsThroughAOneTrackMultitrackWrapper) {
  // Multitrack (5): OneTrack | CodedFrames, FourCC ac-3, track 0.
  ASSERT_TRUE(audio(0, "95 01 61632d33 00 0b77fe95144043e1"));
  ASSERT_EQ(out.tracks.size(), 1u);
  EXPECT_EQ(out.tracks[0].codec, Codec::ac3);
  EXPECT_EQ(out.frames.size(), 1u);
}

TEST_F(FlvDemuxerTest, UnsupportedAudioFormatsNameThemselves) {
  EXPECT_EQ(audio(0, "6f 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "audio format 6 (Nellymoser)");
  EXPECT_EQ(audio(0, "b2 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "audio format 11 (Speex)");
  EXPECT_EQ(audio(0, "72 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "audio format 7 (G.711 A-law)");
  EXPECT_EQ(audio(0, "90 766f7262 00").error(), errc::unsupported);
  EXPECT_EQ(demuxer.detail(), "audio FourCC vorb");
}

TEST_F(FlvDemuxerTest, ChangedAudioConfigBumpsVersion) {
  ASSERT_TRUE(audio(0, "af00 1210"));
  ASSERT_TRUE(audio(0, "af00 1210"));
  ASSERT_TRUE(audio(0, "af00 1190"));
  ASSERT_EQ(out.tracks.size(), 2u);
  EXPECT_EQ(out.tracks[1].version, 2u);
  EXPECT_EQ(out.tracks[1].timescale, 48000u);
}

TEST_F(FlvDemuxerTest, EveryPrefixOfValidBodiesIsHandledWithoutCrash) {
  const auto full = testing::hex_vector("97 02 0f4240 03 61766331 00000001 65");
  for (std::size_t n = 0; n <= full.size(); ++n) {
    (void)demuxer.video(0, Bytes::copy_of(std::span(full.data(), n)), out);
  }
  const auto seq = testing::hex_vector(kAvcSequenceHeader);
  for (std::size_t n = 0; n < seq.size() - 4; ++n) {
    EXPECT_FALSE(demuxer.video(0, Bytes::copy_of(std::span(seq.data(), n)), out)) << n;
  }
}

}  // namespace
}  // namespace sf::media
