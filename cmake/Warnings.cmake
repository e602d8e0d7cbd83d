# Picky warnings for our own targets; -Werror only when CSIP_WERROR (the dev preset).
function(csip_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2
    -Wimplicit-fallthrough -Wconversion -Wno-sign-conversion -Wpointer-arith -Wundef)
  if(CSIP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
