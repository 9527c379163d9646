<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out><xsl:call-template name="r"/></out></xsl:template>
  <xsl:template name="r"><x><xsl:call-template name="r"/></x></xsl:template>
</xsl:stylesheet>
