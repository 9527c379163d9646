<?xml version="1.0"?>
<xsl:stylesheet version="1.1" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <xsl:document href="@OUT@" method="text">pwned</xsl:document>
    <out/>
  </xsl:template>
</xsl:stylesheet>
