"""Named metadata in `.tflite` files: written with TensorFlow, read without.

A `.tflite` file is a flatbuffer whose `Model` table lists `metadata`
entries, each a name and the index of a buffer. `add` writes one entry of
bytes (at conversion time, where TensorFlow is loaded); `read` returns the
entries of a file with nothing but `struct`, so a runner or a deployed
decode loop reads the file's contract without TensorFlow or flatbuffers.
"""

import struct

# Field numbers of the TFLite schema (tensorflow/lite/schema/schema.fbs).
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


def add(data, name, payload):
    """Returns `.tflite` bytes `data` with metadata `name` set to `payload`.

    An entry of the same name is replaced.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    buffer = schema.BufferT()
    buffer.data = list(payload)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in model.metadata or [] if _text(m.name) != name]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def read(data):
    """Returns `{name: bytes}` of a `.tflite` file's metadata entries.

    Args:
        data: the file's bytes.

    Raises:
        ValueError: the bytes are not a TFLite flatbuffer.
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("Not a TFLite file: no TFL3 identifier.")
    model = _u32(data, 0)
    buffers = _vector(data, model, _MODEL_BUFFERS)
    entries = {}
    for entry in _tables(data, model, _MODEL_METADATA):
        name = _string(data, entry, _METADATA_NAME)
        index = _scalar(data, entry, _METADATA_BUFFER, "<I")
        buffer = _table_at(data, buffers[index])
        offset = _scalar(data, buffer, _BUFFER_OFFSET, "<Q")
        if offset > 1:  # files over 2 GB keep buffers after the flatbuffer
            size = _scalar(data, buffer, _BUFFER_SIZE, "<Q")
            entries[name] = data[offset : offset + size]
        else:
            entries[name] = _bytes(data, buffer, _BUFFER_DATA)
    return entries


def _u32(data, at):
    return struct.unpack_from("<I", data, at)[0]


def _field(data, table, field):
    # Position of a field's value, or None when the table omits it.
    vtable = table - struct.unpack_from("<i", data, table)[0]
    size = struct.unpack_from("<H", data, vtable)[0]
    slot = 4 + 2 * field
    if slot >= size:
        return None
    offset = struct.unpack_from("<H", data, vtable + slot)[0]
    return table + offset if offset else None


def _scalar(data, table, field, fmt):
    at = _field(data, table, field)
    return 0 if at is None else struct.unpack_from(fmt, data, at)[0]


def _vector(data, table, field):
    # Positions of a vector's elements (offsets to tables or strings).
    at = _field(data, table, field)
    if at is None:
        return []
    start = at + _u32(data, at)
    return [start + 4 + 4 * i for i in range(_u32(data, start))]


def _table_at(data, at):
    return at + _u32(data, at)


def _tables(data, table, field):
    return [_table_at(data, at) for at in _vector(data, table, field)]


def _bytes(data, table, field):
    at = _field(data, table, field)
    if at is None:
        return b""
    start = at + _u32(data, at)
    return data[start + 4 : start + 4 + _u32(data, start)]


def _string(data, table, field):
    return _bytes(data, table, field).decode()
