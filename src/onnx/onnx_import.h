/* The ONNX importer's internal interface: TensorProto decoding (also used by the conformance
 * runner to read its input_N.pb / output_N.pb files) and the element-type mapping.
 * The model importer itself is public: kiln_graph_load_onnx / kiln_graph_load_onnx_memory. */
#ifndef KILN_ONNX_IMPORT_H
#define KILN_ONNX_IMPORT_H

#include "ir/ir.h"

/* Oldest and newest default-domain opsets the importer takes. Opsets 22..KN_ONNX_MAX_OPSET are
 * read with the definitions of opset 21: for the ops in kiln's set, later versions only add
 * element types (bfloat16, float8, int4, ...), which kiln refuses by type where it lacks them. */
#define KN_ONNX_MIN_OPSET 7
#define KN_ONNX_MAX_OPSET 28
#define KN_ONNX_MIN_IR_VERSION 3

/* kiln's type for an ONNX TensorProto.DataType code; KILN_DTYPE_INVALID when kiln has none. */
kiln_dtype kn_onnx_dtype(int64_t code);
/* The ONNX code of a kiln type (0 for KILN_DTYPE_INVALID). */
int kn_onnx_code(kiln_dtype dtype);
/* "FLOAT", "UINT16", ...: the ONNX name of a type code, for messages. */
const char *kn_onnx_type_name(int64_t code);

/* Reads a file holding one serialized TensorProto into a new host tensor (free with
 * kn_host_tensor_free). External data, if any, is read relative to the file's folder. If name is
 * not NULL it receives the tensor's name (kn_strdup'd, "" when unnamed; free with kn_free). */
kiln_status kn_onnx_read_tensor_file(const char *path, kn_host_tensor **out, char **name);
/* Same, from a serialized TensorProto in memory; base_dir (may be NULL) is the folder of external
 * data. */
kiln_status kn_onnx_parse_tensor(const void *data, size_t size, const char *base_dir,
                                 kn_host_tensor **out, char **name);

/* Reads a whole file into memory (kn_malloc'd); NOT_FOUND when it does not exist. */
kiln_status kn_onnx_read_file(const char *path, void **data, size_t *size);

#endif
