# Turns a file into a C array: cmake -DIN=file -DOUT=file.c [-DNAME=symbol] -P embed.cmake
# defines NAME[] (bytes, NUL-terminated), NAME_len and NAME_etag (a quoted SHA-1 prefix).
if(NOT NAME)
  set(NAME hb_demo_html)
endif()
file(SHA1 ${IN} sha)
string(SUBSTRING "${sha}" 0 16 sha)
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "#include <stddef.h>\nconst unsigned char ${NAME}[] = {${body} 0};\nconst size_t ${NAME}_len = ${len};\nconst char ${NAME}_etag[] = \"\\\"${sha}\\\"\";\n")
