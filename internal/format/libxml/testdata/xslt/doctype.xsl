<?xml version="1.0"?>
<!DOCTYPE xsl:stylesheet [
  <!ENTITY x SYSTEM "file://@CANARY@">
]>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out>&x;</out></xsl:template>
</xsl:stylesheet>
