"""A fast reader of digitStruct.mat's objects, straight from the file's bytes (private to
`digit_struct`): MATLAB writes them in HDF5's oldest formats, whose few fields it parses in
microseconds where h5py spends tens of microseconds an object. Anything else raises NotSimple,
and `digit_struct` reads that photo through h5py instead.
"""

from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path

import h5py
import numpy as np

# The bbox struct's fields a photo's digits are read from (digit_struct.BOX_FIELDS).
BOX_FIELDS = ("left", "top", "width", "height", "label")


class NotSimple(Exception):
  """An object the fast reader does not parse; h5py reads it instead."""


_DATASET_MESSAGES = {0x01, 0x03, 0x08}  # dataspace, datatype, data layout
_GROUP_MESSAGES = {0x11}  # symbol table


class FastReader:
  """Reads digitStruct.mat's objects straight from the file's bytes, by their references.

  h5py spends tens of microseconds on each object, and train's file references 575,000 of them
  (a name, a bbox struct, 5 fields, 5 scalars per digit): 70 s through h5py, 3 s here, on a
  full-size stand-in (benchmarks/official_data.py, 2-core Xeon). MATLAB writes them in the
  oldest HDF5 formats (version-1 object headers, symbol-table groups, contiguous or compact
  data), whose few fields this class reads in a few microseconds. An object in any other form
  raises NotSimple, and that photo is read through h5py.
  """

  def __init__(self, f: h5py.File, path: Path):
    plist = f.id.get_create_plist()
    if plist.get_sizes() != (8, 8):
      raise NotSimple("addresses are not 8 bytes")
    self.base = plist.get_userblock()  # object addresses count from the superblock
    self.names = raw_addresses(f["digitStruct/name"]).tolist()
    self.boxes = raw_addresses(f["digitStruct/bbox"]).tolist()
    with open(path, "rb") as file:
      self.buf = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)

  def close(self) -> None:
    self.buf.close()

  def _u64(self, offset: int) -> int:
    return struct.unpack_from("<Q", self.buf, offset)[0]

  def _messages(self, address: int, wanted: set[int]) -> dict[int, int]:
    """Returns {message type: offset of its data} for the object header at `address`, reading
    messages until it has seen every type in `wanted`."""
    start = self.base + address
    if not (0 < address and start + 16 <= len(self.buf) and self.buf[start] == 1):
      raise NotSimple(f"no version-1 object header at {address}")
    size = struct.unpack_from("<I", self.buf, start + 8)[0]
    chunks, found = [(start + 16, size)], {}
    for chunk_start, chunk_size in chunks:
      position, end = chunk_start, min(chunk_start + chunk_size, len(self.buf))
      while position + 8 <= end:
        kind, length, flags = struct.unpack_from("<HHB", self.buf, position)
        if kind == 0x10:  # continuation: more messages elsewhere
          chunks.append((self.base + self._u64(position + 8), self._u64(position + 16)))
        elif kind and kind not in found:
          if flags & 0x02:  # shared message: the data lives in another object
            raise NotSimple(f"shared message in the object at {address}")
          found[kind] = position + 8
        position += 8 + length
        if wanted <= found.keys():
          return found
    return found

  def _dataset(self, address: int) -> tuple[tuple[int, ...], int, int, bytes]:
    """Returns (dims, datatype class, element size, raw data) of a dataset."""
    messages = self._messages(address, _DATASET_MESSAGES)
    if not _DATASET_MESSAGES <= messages.keys():
      raise NotSimple(f"the object at {address} is not a plain dataset")
    space = messages[0x01]
    version, rank = self.buf[space], self.buf[space + 1]
    dims = struct.unpack_from(f"<{rank}Q", self.buf, space + (8 if version == 1 else 4))
    datatype = messages[0x03]
    type_class, bits = self.buf[datatype] & 0x0F, self.buf[datatype + 1]
    element = struct.unpack_from("<I", self.buf, datatype + 4)[0]
    layout = messages[0x08]
    # Bit 0 is the byte order of numbers, and for references 0 in the low 4 bits is an object's.
    if self.buf[layout] != 3 or (bits & 0x01 if type_class != 7 else bits & 0x0F):
      raise NotSimple(f"unusual layout, byte order or reference kind at {address}")
    if self.buf[layout + 1] == 0:  # compact: the data sits in the header
      size = struct.unpack_from("<H", self.buf, layout + 2)[0]
      data_start = layout + 4
    elif self.buf[layout + 1] == 1:  # contiguous
      data_start = self.base + self._u64(layout + 2)
      size = self._u64(layout + 10)
    else:
      raise NotSimple(f"chunked data at {address}")
    if size != element * math.prod(dims) or data_start + size > len(self.buf):
      raise NotSimple(f"data of the dataset at {address} does not fit its shape")
    return dims, type_class, element, self.buf[data_start:data_start + size]

  def _links(self, address: int) -> dict[str, int]:
    """Returns {name: object address} of a symbol-table group's members."""
    messages = self._messages(address, _GROUP_MESSAGES)
    if 0x11 not in messages:
      raise NotSimple(f"the object at {address} is not a symbol-table group")
    tree, heap = struct.unpack_from("<QQ", self.buf, messages[0x11])
    heap_start = self.base + heap
    if self.buf[heap_start:heap_start + 4] != b"HEAP":
      raise NotSimple(f"no local heap at {heap}")
    names_start = self.base + self._u64(heap_start + 24)
    links, nodes = {}, [tree]
    while nodes:
      node = self.base + nodes.pop()
      if self.buf[node:node + 4] != b"TREE" or self.buf[node + 4] != 0:
        raise NotSimple(f"no group B-tree node at {node - self.base}")
      level, used = self.buf[node + 5], struct.unpack_from("<H", self.buf, node + 6)[0]
      children = [self._u64(node + 32 + 16 * i) for i in range(used)]
      if level:
        nodes.extend(children)
        continue
      for child in children:
        symbols = self.base + child
        if self.buf[symbols:symbols + 4] != b"SNOD":
          raise NotSimple(f"no symbol node at {child}")
        for i in range(struct.unpack_from("<H", self.buf, symbols + 6)[0]):
          name_offset, target = struct.unpack_from("<QQ", self.buf, symbols + 8 + 40 * i)
          name_start = names_start + name_offset
          name = self.buf[name_start:self.buf.find(b"\0", name_start)].decode()
          links[name] = target
    return links

  def name(self, i: int) -> str:
    dims, type_class, element, data = self._dataset(self.names[i])
    if type_class != 0 or element != 2:
      raise NotSimple("the name is not a uint16 char array")
    return data.decode("utf-16-le")

  def _number(self, address: int) -> float:
    dims, type_class, element, data = self._dataset(address)
    if type_class != 1 or element != 8 or len(data) != 8:
      raise NotSimple("not a (1, 1) double")
    return struct.unpack("<d", data)[0]

  def fields(self, i: int) -> dict[str, list[float]]:
    fields = {}
    for name, address in self._links(self.boxes[i]).items():
      if name not in BOX_FIELDS:
        continue
      dims, type_class, element, data = self._dataset(address)
      count = len(data) // 8
      if type_class == 1 and element == 8:
        fields[name] = list(struct.unpack(f"<{count}d", data))
      elif type_class == 7 and element == 8:
        fields[name] = [self._number(a) for a in struct.unpack(f"<{count}Q", data)]
      else:
        raise NotSimple(f"field {name} is neither doubles nor references")
    return fields


def raw_addresses(dataset: h5py.Dataset) -> np.ndarray:
  """Returns the object addresses an (N, 1) reference dataset holds, in one read."""
  if not dataset.id.get_type().equal(h5py.h5t.STD_REF_OBJ):
    raise NotSimple(f"{dataset.name} holds another kind of reference")
  addresses = np.empty(dataset.shape, np.uint64)
  dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, addresses, mtype=h5py.h5t.STD_REF_OBJ)
  return addresses.ravel()

