if(CSIP_SANITIZE)
  add_compile_options(-fsanitize=${CSIP_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${CSIP_SANITIZE})
endif()
