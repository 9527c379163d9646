<?xml version="1.0"?>
<!-- Every way of naming a local file through document(): absolute path, file URL, a file
     beside the stylesheet (relative to its base URI), and /etc/passwd. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <out>
      <a><xsl:copy-of select="document('@CANARY@')"/></a>
      <b><xsl:copy-of select="document('file://@CANARY@')"/></b>
      <c><xsl:copy-of select="document('secret.xml')"/></c>
      <d><xsl:value-of select="string(document('/etc/passwd'))"/></d>
    </out>
  </xsl:template>
</xsl:stylesheet>
