from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_LINEAR16: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_WAV: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_MULAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_ALAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_OGG_OPUS: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_LINEAR16: AudioEncoding
AUDIO_ENCODING_WAV: AudioEncoding
AUDIO_ENCODING_MULAW: AudioEncoding
AUDIO_ENCODING_ALAW: AudioEncoding
AUDIO_ENCODING_OGG_OPUS: AudioEncoding

class AudioConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "chunk_duration_ms", "volume_gain_db")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_GAIN_DB_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    chunk_duration_ms: int
    volume_gain_db: float
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., chunk_duration_ms: _Optional[int] = ..., volume_gain_db: _Optional[float] = ...) -> None: ...

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "voice", "audio_config", "speaking_rate", "request_id", "speaker_id", "seed", "ssml", "pronunciations")
    class PronunciationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_RATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SSML_FIELD_NUMBER: _ClassVar[int]
    PRONUNCIATIONS_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    audio_config: AudioConfig
    speaking_rate: float
    request_id: str
    speaker_id: int
    seed: int
    ssml: str
    pronunciations: _containers.ScalarMap[str, str]
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., audio_config: _Optional[_Union[AudioConfig, _Mapping]] = ..., speaking_rate: _Optional[float] = ..., request_id: _Optional[str] = ..., speaker_id: _Optional[int] = ..., seed: _Optional[int] = ..., ssml: _Optional[str] = ..., pronunciations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio", "format", "num_samples", "request_id")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    format: AudioFormat
    num_samples: int
    request_id: str
    def __init__(self, audio: _Optional[bytes] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., num_samples: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamSynthesizeRequest(_message.Message):
    __slots__ = ("text", "voice", "audio_config", "speaking_rate", "request_id", "speaker_id", "seed", "enable_word_timestamps", "ssml", "pronunciations")
    class PronunciationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_RATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ENABLE_WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    SSML_FIELD_NUMBER: _ClassVar[int]
    PRONUNCIATIONS_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    audio_config: AudioConfig
    speaking_rate: float
    request_id: str
    speaker_id: int
    seed: int
    enable_word_timestamps: bool
    ssml: str
    pronunciations: _containers.ScalarMap[str, str]
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., audio_config: _Optional[_Union[AudioConfig, _Mapping]] = ..., speaking_rate: _Optional[float] = ..., request_id: _Optional[str] = ..., speaker_id: _Optional[int] = ..., seed: _Optional[int] = ..., enable_word_timestamps: _Optional[bool] = ..., ssml: _Optional[str] = ..., pronunciations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StreamSynthesizeResponse(_message.Message):
    __slots__ = ("audio", "sequence_number", "offset_samples", "num_samples", "final", "format", "request_id", "words")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    sequence_number: int
    offset_samples: int
    num_samples: int
    final: bool
    format: AudioFormat
    request_id: str
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    def __init__(self, audio: _Optional[bytes] = ..., sequence_number: _Optional[int] = ..., offset_samples: _Optional[int] = ..., num_samples: _Optional[int] = ..., final: _Optional[bool] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., request_id: _Optional[str] = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ...) -> None: ...

class WordTiming(_message.Message):
    __slots__ = ("word", "char_start", "char_end", "start_sample", "end_sample")
    WORD_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    START_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    END_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    word: str
    char_start: int
    char_end: int
    start_sample: int
    end_sample: int
    def __init__(self, word: _Optional[str] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ..., start_sample: _Optional[int] = ..., end_sample: _Optional[int] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("voices", "default_voice")
    VOICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VOICE_FIELD_NUMBER: _ClassVar[int]
    voices: _containers.RepeatedCompositeFieldContainer[Voice]
    default_voice: str
    def __init__(self, voices: _Optional[_Iterable[_Union[Voice, _Mapping]]] = ..., default_voice: _Optional[str] = ...) -> None: ...

class Voice(_message.Message):
    __slots__ = ("name", "language", "sample_rate_hz", "quality", "speakers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    language: str
    sample_rate_hz: int
    quality: str
    speakers: _containers.RepeatedCompositeFieldContainer[Speaker]
    def __init__(self, name: _Optional[str] = ..., language: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., quality: _Optional[str] = ..., speakers: _Optional[_Iterable[_Union[Speaker, _Mapping]]] = ...) -> None: ...

class Speaker(_message.Message):
    __slots__ = ("name", "id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: int
    def __init__(self, name: _Optional[str] = ..., id: _Optional[int] = ...) -> None: ...

class LiveSynthesizeRequest(_message.Message):
    __slots__ = ("settings", "utterance_id", "text", "flush", "end_of_utterance", "cancel")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    END_OF_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    settings: LiveSettings
    utterance_id: str
    text: str
    flush: bool
    end_of_utterance: bool
    cancel: bool
    def __init__(self, settings: _Optional[_Union[LiveSettings, _Mapping]] = ..., utterance_id: _Optional[str] = ..., text: _Optional[str] = ..., flush: _Optional[bool] = ..., end_of_utterance: _Optional[bool] = ..., cancel: _Optional[bool] = ...) -> None: ...

class LiveSettings(_message.Message):
    __slots__ = ("voice", "audio_config", "speaking_rate", "speaker_id", "seed", "enable_word_timestamps", "segmentation", "request_id", "ssml", "pronunciations")
    class PronunciationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOICE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_RATE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ENABLE_WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SSML_FIELD_NUMBER: _ClassVar[int]
    PRONUNCIATIONS_FIELD_NUMBER: _ClassVar[int]
    voice: str
    audio_config: AudioConfig
    speaking_rate: float
    speaker_id: int
    seed: int
    enable_word_timestamps: bool
    segmentation: Segmentation
    request_id: str
    ssml: bool
    pronunciations: _containers.ScalarMap[str, str]
    def __init__(self, voice: _Optional[str] = ..., audio_config: _Optional[_Union[AudioConfig, _Mapping]] = ..., speaking_rate: _Optional[float] = ..., speaker_id: _Optional[int] = ..., seed: _Optional[int] = ..., enable_word_timestamps: _Optional[bool] = ..., segmentation: _Optional[_Union[Segmentation, _Mapping]] = ..., request_id: _Optional[str] = ..., ssml: _Optional[bool] = ..., pronunciations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Segmentation(_message.Message):
    __slots__ = ("client_segments", "no_eager_first_segment", "max_delay_ms", "keep_markup")
    CLIENT_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NO_EAGER_FIRST_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    KEEP_MARKUP_FIELD_NUMBER: _ClassVar[int]
    client_segments: bool
    no_eager_first_segment: bool
    max_delay_ms: int
    keep_markup: bool
    def __init__(self, client_segments: _Optional[bool] = ..., no_eager_first_segment: _Optional[bool] = ..., max_delay_ms: _Optional[int] = ..., keep_markup: _Optional[bool] = ...) -> None: ...

class LiveSynthesizeResponse(_message.Message):
    __slots__ = ("utterance_id", "audio", "sequence_number", "offset_samples", "num_samples", "format", "words", "flushed", "utterance_done", "cancelled", "request_id")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_DONE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    audio: bytes
    sequence_number: int
    offset_samples: int
    num_samples: int
    format: AudioFormat
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    flushed: bool
    utterance_done: bool
    cancelled: bool
    request_id: str
    def __init__(self, utterance_id: _Optional[str] = ..., audio: _Optional[bytes] = ..., sequence_number: _Optional[int] = ..., offset_samples: _Optional[int] = ..., num_samples: _Optional[int] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ..., flushed: _Optional[bool] = ..., utterance_done: _Optional[bool] = ..., cancelled: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...
