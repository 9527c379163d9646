<?xml version="1.0"?>
<!-- inc/link.xsl is a symbolic link to a stylesheet outside this directory. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:import href="inc/link.xsl"/>
  <xsl:template match="/"><out/></xsl:template>
</xsl:stylesheet>
