#include "sf/cmaf/fmp4.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sf/core/byte_reader.h"
#include "sf/media/flv.h"

namespace sf::cmaf {
namespace {

namespace fs = std::filesystem;
using media::Codec;
using media::MediaFrame;
using media::MediaType;
using media::TrackConfig;

// Configuration records as ffmpeg 5.1 / libx265 / libaom wrote them (see the media FLV tests).
constexpr std::string_view kHvcc1080p =
    "01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003007895"
    "9809a10001002a420101016000000300900000030000030078a003c08010e596566924caf01680800000030080000"
    "00f04a2000100074401c172b46240";
constexpr std::string_view kAv1c = "81010c000a0b0000000cc4ff6700be0010";

Bytes hex(std::string_view text) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  }
  return Bytes::copy_of(out);
}

struct Command {
  int status;
  std::string output;
};

Command run(const std::string& cmd) {
  Command result{-1, {}};
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  result.status = ::pclose(pipe);
  return result;
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Bytes::copy_of(as_bytes(std::string_view(v.data(), v.size())));
}

struct Collector : media::FlvDemuxer::Output {
  void on_track(const TrackConfig& track) override { tracks[track.track_id] = track; }
  void on_frame(MediaFrame&& frame) override { frames[frame.track_id].push_back(std::move(frame)); }
  std::map<std::uint32_t, TrackConfig> tracks;
  std::map<std::uint32_t, std::vector<MediaFrame>> frames;
};

// FLV file layer (FLV 10.1 Annex E.2–E.4): header, then tags each followed by PreviousTagSize.
// Bodies are slices of `file`, so the demuxed frames point into it.
Result<void> demux_flv_file(const Bytes& file, Collector& out) {
  media::FlvDemuxer demuxer;
  ByteReader r(file);
  if (auto s = r.skip(5); !s) return s;
  auto header_size = r.u32();
  if (!header_size) return std::unexpected(header_size.error());
  if (auto s = r.skip(*header_size - 9 + 4); !s) return s;
  while (!r.empty()) {
    auto type = r.u8();
    auto size = r.u24();
    auto ts = r.u24();
    auto ts_ext = r.u8();
    if (!type || !size || !ts || !ts_ext) return fail(errc::truncated);
    if (auto s = r.skip(3); !s) return s;
    const std::size_t offset = r.position();
    if (auto s = r.skip(*size + 4); !s) return s;
    const Bytes body = file.share(offset, *size);
    const std::int64_t ms = std::int64_t{*ts} | std::int64_t{*ts_ext} << 24;
    Result<void> ok;
    if (*type == 8) ok = demuxer.audio(ms, body, out);
    if (*type == 9) ok = demuxer.video(ms, body, out);
    if (!ok) return ok;
  }
  return {};
}

// Cuts `frames` into 0.5 s chunks (a segment = 4 chunks, each starting with styp) and writes
// init + chunks to `path`. Returns the chunks for inspection.
std::vector<Chunk> write_track_file(const TrackConfig& track, const std::vector<MediaFrame>& frames,
                                    const fs::path& path) {
  auto init = write_init_segment(track);
  EXPECT_TRUE(init);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(init->data()), static_cast<std::streamsize>(init->size()));

  const std::int64_t part_ticks = track.timescale / 2;
  const std::int64_t last_duration = frames.size() > 1 ? frames.back().dts - frames[frames.size() - 2].dts : 0;
  std::vector<Chunk> chunks;
  std::size_t begin = 0;
  std::uint32_t sequence = 1;
  while (begin < frames.size()) {
    std::size_t end = begin + 1;
    while (end < frames.size() && frames[end].dts / part_ticks == frames[begin].dts / part_ticks) ++end;
    const std::int64_t next_dts = end < frames.size() ? frames[end].dts : frames.back().dts + last_duration;
    const std::span<const MediaFrame> part(frames.data() + begin, end - begin);
    chunks.push_back(write_chunk(track, sequence, part, next_dts, (sequence - 1) % 4 == 0));
    const Chunk& c = chunks.back();
    out.write(reinterpret_cast<const char*>(c.header.data()), static_cast<std::streamsize>(c.header.size()));
    for (const Bytes& p : c.payload) out.write(reinterpret_cast<const char*>(p.data()), p.size());
    ++sequence;
    begin = end;
  }
  return chunks;
}

nlohmann::json probe(const fs::path& path) {
  const Command c = run("ffprobe -v error -show_streams -show_packets -of json '" + path.string() + "' 2>/dev/null");
  if (c.status != 0) return nullptr;
  return nlohmann::json::parse(c.output, nullptr, false);
}

class Fmp4FromFfmpeg : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sf_cmaf_test.XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    dir_ = tmpl;
    const fs::path flv = dir_ / "x.flv";
    const Command made =
        run("ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -t 3 "
            "-c:v libx264 -g 30 -bf 2 -c:a aac -f flv '" +
            flv.string() + "' 2>&1");
    if (made.status != 0) {
      setup_error_ = "ffmpeg could not make the test stream: " + made.output;
      return;
    }
    file_ = new Bytes(read_file(flv));
    collector_ = new Collector;
    if (!demux_flv_file(*file_, *collector_)) setup_error_ = "the FLV file did not demux";
  }
  static void TearDownTestSuite() {
    delete collector_;
    delete file_;
    collector_ = nullptr;
    file_ = nullptr;
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!setup_error_.empty()) GTEST_SKIP() << setup_error_;
    ASSERT_TRUE(collector_->tracks.contains(1) && collector_->tracks.contains(2));
  }

  const TrackConfig& track(std::uint32_t id) { return collector_->tracks.at(id); }
  const std::vector<MediaFrame>& frames(std::uint32_t id) { return collector_->frames.at(id); }
  fs::path write(std::uint32_t id, std::vector<Chunk>* chunks = nullptr) {
    const fs::path path = dir_ / ("track" + std::to_string(id) + ".mp4");
    auto written = write_track_file(track(id), frames(id), path);
    if (chunks) *chunks = std::move(written);
    return path;
  }

  void expect_packets_match_frames(std::uint32_t id) {
    const auto json = probe(write(id));
    ASSERT_TRUE(json.is_object());
    const auto& packets = json.at("packets");
    const auto& in = frames(id);
    ASSERT_FALSE(in.empty());
    ASSERT_EQ(packets.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      EXPECT_EQ(packets[i].at("dts").get<std::int64_t>(), in[i].dts) << "packet " << i;
      EXPECT_EQ(packets[i].at("pts").get<std::int64_t>(), in[i].pts) << "packet " << i;
      EXPECT_EQ(packets[i].at("size").get<std::string>(), std::to_string(in[i].data.size())) << "packet " << i;
      EXPECT_EQ(packets[i].at("flags").get<std::string>().front() == 'K', in[i].keyframe) << "packet " << i;
    }
  }

  void expect_decodes_cleanly(std::uint32_t id) {
    const fs::path path = write(id);
    const Command c = run("ffmpeg -nostdin -v error -xerror -i '" + path.string() + "' -f null - 2>&1");
    EXPECT_EQ(c.status, 0);
    EXPECT_EQ(c.output, "");
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
  static inline Bytes* file_ = nullptr;
  static inline Collector* collector_ = nullptr;
};

TEST_F(Fmp4FromFfmpeg, VideoTrackProbesAsH264WithSourceDimensions) {
  const auto json = probe(write(1));
  ASSERT_TRUE(json.is_object());
  const auto& s = json.at("streams").at(0);
  EXPECT_EQ(s.at("codec_name"), "h264");
  EXPECT_EQ(s.at("width"), 640);
  EXPECT_EQ(s.at("height"), 360);
  EXPECT_EQ(s.at("time_base"), "1/90000");
}

TEST_F(Fmp4FromFfmpeg, AudioTrackProbesAsAacWithSourceRate) {
  const auto json = probe(write(2));
  ASSERT_TRUE(json.is_object());
  const auto& s = json.at("streams").at(0);
  EXPECT_EQ(s.at("codec_name"), "aac");
  EXPECT_EQ(s.at("sample_rate"), "44100");
  EXPECT_EQ(s.at("channels"), 1);
  EXPECT_EQ(s.at("time_base"), "1/44100");
}

TEST_F(Fmp4FromFfmpeg, VideoPacketsKeepSourceTimestampsSizesAndKeyframes) {
  expect_packets_match_frames(1);
}

TEST_F(Fmp4FromFfmpeg, AudioPacketsKeepSourceTimestampsSizesAndKeyframes) {
  expect_packets_match_frames(2);
}

TEST_F(Fmp4FromFfmpeg, VideoFileDecodesWithoutErrors) {
  expect_decodes_cleanly(1);
}

TEST_F(Fmp4FromFfmpeg, AudioFileDecodesWithoutErrors) {
  expect_decodes_cleanly(2);
}

TEST_F(Fmp4FromFfmpeg, ChunkPayloadIsTheFramesOwnMemory) {
  std::vector<Chunk> chunks;
  write(1, &chunks);
  const auto& in = frames(1);
  std::size_t i = 0;
  for (const Chunk& c : chunks) {
    for (const Bytes& p : c.payload) {
      ASSERT_LT(i, in.size());
      EXPECT_EQ(p.data(), in[i].data.data());
      EXPECT_EQ(p.size(), in[i].data.size());
      EXPECT_GE(p.data(), file_->data());
      EXPECT_LE(p.data() + p.size(), file_->data() + file_->size());
      ++i;
    }
  }
  EXPECT_EQ(i, in.size());
}

media::VideoConfig video_config(Codec codec, std::uint32_t width, std::uint32_t height) {
  media::VideoConfig v;
  v.codec = codec;
  v.width = width;
  v.height = height;
  return v;
}

TrackConfig synthetic_video_track() {
  TrackConfig t;
  t.track_id = 1;
  t.type = MediaType::video;
  t.codec = Codec::h264;
  t.record =
      hex("0164001fffe1000467640000010004"
          "68ebe3cb");
  t.video = video_config(Codec::h264, 1280, 720);
  return t;
}

MediaFrame frame(std::int64_t dts, std::int64_t pts, bool key, std::string_view payload) {
  MediaFrame f;
  f.track_id = 1;
  f.dts = dts;
  f.pts = pts;
  f.keyframe = key;
  f.data = Bytes::copy_of(as_bytes(payload));
  return f;
}

// Reads box headers of `header` (followed by the payload) down the path moof/traf/<leaf>.
struct Box {
  std::string type;
  ByteView body;
};
std::vector<Box> boxes(ByteView in) {
  std::vector<Box> out;
  ByteReader r(in);
  while (r.remaining() >= 8) {
    const std::uint32_t size = *r.u32();
    auto type = r.bytes(4);
    const std::size_t body_size = std::min<std::size_t>(size - 8, r.remaining());
    out.push_back({std::string(as_chars(*type)), *r.bytes(body_size)});
  }
  return out;
}

TEST(Fmp4Chunk, TrunDescribesEachSampleAndPointsPastTheMdatHeader) {
  const TrackConfig track = synthetic_video_track();
  const std::vector<MediaFrame> in = {frame(9000, 18000, true, "abcd"), frame(12000, 12000, false, "ef"),
                                      frame(15000, 13500, false, "ghi")};
  const Chunk c = write_chunk(track, 7, in, 18000, false);

  const auto top = boxes(c.header);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].type, "moof");
  EXPECT_EQ(top[1].type, "mdat");
  EXPECT_EQ(c.header.size(), top[0].body.size() + 8 + 8);
  EXPECT_EQ(c.size(), c.header.size() + 9);

  const auto moof = boxes(top[0].body);
  ASSERT_EQ(moof.size(), 2u);
  ByteReader mfhd(moof[0].body);
  ASSERT_TRUE(mfhd.skip(4));
  EXPECT_EQ(*mfhd.u32(), 7u);

  const auto traf = boxes(moof[1].body);
  ASSERT_EQ(traf.size(), 3u);
  ByteReader tfhd(traf[0].body);
  EXPECT_EQ(*tfhd.u32(), 0x00020000u);
  EXPECT_EQ(*tfhd.u32(), 1u);
  ByteReader tfdt(traf[1].body);
  EXPECT_EQ(*tfdt.u32(), 0x01000000u);
  EXPECT_EQ(*tfdt.u64(), 9000u);

  ByteReader trun(traf[2].body);
  EXPECT_EQ(*trun.u32(), 0x01000F01u);
  EXPECT_EQ(*trun.u32(), 3u);
  EXPECT_EQ(*trun.u32(), top[0].body.size() + 8 + 8);  // data_offset: moof size + mdat header
  const std::uint32_t expected[3][4] = {
      {3000, 4, 0x02000000, 9000}, {3000, 2, 0x01010000, 0}, {3000, 3, 0x01010000, static_cast<std::uint32_t>(-1500)}};
  for (const auto& sample : expected) {
    for (std::uint32_t v : sample) EXPECT_EQ(*trun.u32(), v);
  }
  EXPECT_TRUE(trun.empty());
}

TEST(Fmp4Chunk, StypPrecedesMoofWhenRequested) {
  const std::vector<MediaFrame> in = {frame(0, 0, true, "x")};
  const Chunk c = write_chunk(synthetic_video_track(), 1, in, 3000, true);
  const auto top = boxes(c.header);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].type, "styp");
  EXPECT_EQ(as_chars(top[0].body.first(4)), "cmfs");
  EXPECT_EQ(top[1].type, "moof");
}

TEST(Fmp4Init, RejectsCodecWithoutCmafSampleEntry) {
  TrackConfig t;
  t.type = MediaType::audio;
  t.codec = Codec::mp3;
  t.record = hex("00");
  t.audio = media::AudioConfig{};
  EXPECT_EQ(write_init_segment(t).error(), errc::unsupported);
}

TEST(Fmp4Init, RejectsTrackWithoutConfigurationRecord) {
  TrackConfig t = synthetic_video_track();
  t.record = Bytes();
  EXPECT_EQ(write_init_segment(t).error(), errc::invalid_argument);
}

TEST(Fmp4Init, CarriesTheRecordVerbatimInsideTheSampleEntry) {
  const TrackConfig t = synthetic_video_track();
  const auto init = write_init_segment(t);
  ASSERT_TRUE(init);
  const auto top = boxes(*init);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].type, "ftyp");
  EXPECT_EQ(top[1].type, "moov");
  const std::string_view whole = as_chars(*init);
  const auto at = whole.find("avcC");
  ASSERT_NE(at, std::string_view::npos);
  EXPECT_EQ(whole.substr(at + 4, t.record.size()), as_chars(t.record));
}

// Init segments for codecs FLV from ffmpeg 5.1 cannot carry: ffprobe must read the sample entry.
class Fmp4InitProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sf_cmaf_init.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  nlohmann::json probe_init(const TrackConfig& t) {
    const auto init = write_init_segment(t);
    EXPECT_TRUE(init);
    const fs::path path = dir_ / "init.mp4";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(init->data()), init->size());
    const Command c = run("ffprobe -v error -show_streams -of json '" + path.string() + "' 2>/dev/null");
    if (c.status != 0) return nullptr;
    return nlohmann::json::parse(c.output, nullptr, false);
  }
  fs::path dir_;
};

TEST_F(Fmp4InitProbe, HevcTrackProbesAsHevc) {
  TrackConfig t;
  t.track_id = 1;
  t.codec = Codec::hevc;
  t.record = hex(kHvcc1080p);
  t.video = video_config(Codec::hevc, 1920, 1080);
  const auto json = probe_init(t);
  ASSERT_TRUE(json.is_object());
  const auto& s = json.at("streams").at(0);
  EXPECT_EQ(s.at("codec_name"), "hevc");
  EXPECT_EQ(s.at("codec_tag_string"), "hvc1");
  EXPECT_EQ(s.at("width"), 1920);
  EXPECT_EQ(s.at("height"), 1080);
}

TEST_F(Fmp4InitProbe, Av1TrackProbesAsAv1) {
  TrackConfig t;
  t.track_id = 1;
  t.codec = Codec::av1;
  t.record = hex(kAv1c);
  t.video = video_config(Codec::av1, 640, 360);
  const auto json = probe_init(t);
  ASSERT_TRUE(json.is_object());
  const auto& s = json.at("streams").at(0);
  EXPECT_EQ(s.at("codec_name"), "av1");
  EXPECT_EQ(s.at("width"), 640);
  EXPECT_EQ(s.at("height"), 360);
}

}  // namespace
}  // namespace sf::cmaf
